import { createConfiguration, type ConfigurationOptions, type Middleware } from '@kubernetes/client-node';
import { httpStatusOf } from './kubernetes-watch.js';

export interface Listing {
  /** The objects as the client returns them (its model classes; read through a projection). */
  readonly items: unknown[];
  /** The list's resourceVersion: a watch from it misses nothing and repeats nothing. */
  readonly resourceVersion: string;
}

/** One page of a list call, as every generated `list*` method of the client returns it. */
export interface ListPage {
  readonly items: readonly unknown[];
  readonly metadata?: { readonly resourceVersion?: string; readonly _continue?: string };
}

export type PageFetcher = (query: { limit?: number; _continue?: string }) => Promise<ListPage>;

/**
 * Lists every object as one consistent snapshot, `pageSize` at a time (a large cluster's list is then
 * not one huge response). If the snapshot expires between pages (410 on a continue token), the list
 * restarts unpaged, as client-go's pager does, since a consistent result needs a fresh start.
 */
export async function listAll(fetchPage: PageFetcher, pageSize: number): Promise<Listing> {
  const items: unknown[] = [];
  let resourceVersion = '';
  let limit: number | undefined = pageSize;
  let continueToken: string | undefined;
  for (;;) {
    let page;
    try {
      page = await fetchPage({ limit, _continue: continueToken });
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
