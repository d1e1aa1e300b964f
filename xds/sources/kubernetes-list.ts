import { createConfiguration, type ConfigurationOptions, type CoreV1Api, type Middleware } from '@kubernetes/client-node';
import { httpStatusOf } from './kubernetes-watch.js';

export interface NodeListing {
  /** The Nodes as the client returns them (its model classes; read through projectNode). */
  readonly items: unknown[];
  /** The list's resourceVersion: a watch from it misses nothing and repeats nothing. */
  readonly resourceVersion: string;
}

/**
 * Lists every Node as one consistent snapshot, `pageSize` at a time (a large cluster's list is then
 * not one huge response). If the snapshot expires between pages (410 on a continue token), the list
 * restarts unpaged, as client-go's pager does, since a consistent result needs a fresh start.
 */
export async function listAllNodes(api: CoreV1Api, pageSize: number, options: ConfigurationOptions): Promise<NodeListing> {
  const items: unknown[] = [];
  let resourceVersion = '';
  let limit: number | undefined = pageSize;
  let continueToken: string | undefined;
  for (;;) {
    let page;
    try {
      page = await api.listNode({ limit, _continue: continueToken }, options);
    } catch (error) {
      if (continueToken === undefined || httpStatusOf(error) !== 410) throw error;
      items.length = 0;
      continueToken = limit = undefined;
      continue;
    }
    if (continueToken === undefined) resourceVersion = page.metadata?.resourceVersion ?? '';
    items.push(...page.items);
    continueToken = page.metadata?._continue || undefined;
    if (continueToken === undefined) return { items, resourceVersion };
  }
}

/**
 * Request options that make a call abortable with `signal`. Per-call options take the client's
 * Observable-style middleware; createConfiguration is the public way to wrap a promise-style one.
 */
export function abortableRequest(signal: AbortSignal): ConfigurationOptions {
  const signalMiddleware: Middleware = {
    pre: async (context) => {
      context.setSignal(signal);
      return context;
    },
    post: async (response) => response,
  };
  const { middleware } = createConfiguration({ promiseMiddleware: [signalMiddleware] });
  return { middleware, middlewareMergeStrategy: 'append' };
}
