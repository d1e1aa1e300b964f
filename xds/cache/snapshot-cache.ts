// Holds the current snapshot of every proxy key ("cloud", "sidecar", "edge/<node>") and tells watchers of a key
// when one of its types changed. The protocol sees it only through the ResourceWatcher interface.

import type { XdsTypeUrl } from '../../envoy/xds-types.js';
import type { ResourceSet, Translation } from '../translate/translate.js';
import { EMPTY_TYPE, changedTypes, versionSet, type ProxySnapshot, type TypeSnapshot } from './snapshot.js';

export type ProxyKey = string;

export const CLOUD_KEY: ProxyKey = 'cloud';
/** Every sidecar gets the same resources, as every cloud Envoy does. */
export const SIDECAR_KEY: ProxyKey = 'sidecar';

export const EDGE_KEY_PREFIX = 'edge/';

export function edgeKey(node: string): ProxyKey {
  return `${EDGE_KEY_PREFIX}${node}`;
}

export type ChangeListener = (types: readonly XdsTypeUrl[]) => void;

/** What the protocol needs from a cache: read the current resources of a key, hear about changes. */
export interface ResourceWatcher {
  current(key: ProxyKey, type: XdsTypeUrl): TypeSnapshot;
  watch(key: ProxyKey, onChange: ChangeListener): () => void;
}

export interface PublishResult {
  /** Keys whose resources changed, with the changed types. */
  readonly changed: ReadonlyMap<ProxyKey, readonly XdsTypeUrl[]>;
  /** Errors thrown by watchers; every other watcher was still notified. */
  readonly listenerErrors: readonly unknown[];
}

export class SnapshotCache implements ResourceWatcher {
  private snapshots = new Map<ProxyKey, ProxySnapshot>();
  /** The resource set each snapshot was made from: the very same set again (a memoized node) needs no work. */
  private sources = new Map<ProxyKey, ResourceSet>();
  private readonly listeners = new Map<ProxyKey, Set<ChangeListener>>();

  /** Replaces every key's snapshot with the translation's, notifying watchers of keys that changed. */
  publish(translation: Translation): PublishResult {
    const next = new Map<ProxyKey, ProxySnapshot>();
    const sources = new Map<ProxyKey, ResourceSet>();
    const add = (key: ProxyKey, set: ResourceSet): void => {
      const previous = this.snapshots.get(key);
      next.set(key, previous !== undefined && this.sources.get(key) === set ? previous : versionSet(set, previous));
      sources.set(key, set);
    };
    add(CLOUD_KEY, translation.cloud);
    add(SIDECAR_KEY, translation.sidecar);
    for (const [node, set] of translation.edges) add(edgeKey(node), set);
    const changed = new Map<ProxyKey, readonly XdsTypeUrl[]>();
    for (const key of new Set([...this.snapshots.keys(), ...next.keys()])) {
      const before = this.snapshots.get(key);
      const after = next.get(key);
      if (before === after) continue;
      const types = changedTypes(before, after);
      if (types.length > 0) changed.set(key, types);
    }
    this.snapshots = next;
    this.sources = sources;
    const listenerErrors: unknown[] = [];
    for (const [key, types] of changed) {
      for (const listener of [...(this.listeners.get(key) ?? [])]) {
        try {
          listener(types);
        } catch (error) {
          listenerErrors.push(error);
        }
      }
    }
    return { changed, listenerErrors };
  }

  current(key: ProxyKey, type: XdsTypeUrl): TypeSnapshot {
    return this.snapshots.get(key)?.get(type) ?? EMPTY_TYPE;
  }

  keys(): ProxyKey[] {
    return [...this.snapshots.keys()].sort();
  }

  watch(key: ProxyKey, onChange: ChangeListener): () => void {
    let set = this.listeners.get(key);
    if (!set) this.listeners.set(key, (set = new Set()));
    set.add(onChange);
    return () => {
      set.delete(onChange);
      // Only drop the set if it is still the one registered: a second call must not remove a newer one.
      if (set.size === 0 && this.listeners.get(key) === set) this.listeners.delete(key);
    };
  }
}
