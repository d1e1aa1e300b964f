// What earlier translations built, reused while its input is unchanged, so that one node's change
// costs one node's work: each edge's resources and each edge's virtual host (encoded) are kept by the
// node's content. A translation with a memo is byte for byte the translation without one
// (translate.test.ts); the memo only makes it cheaper. It belongs to one Settings object: other
// settings start it afresh.

import type { TunnelNode } from '../model/node.js';
import type { Settings } from '../model/settings.js';
import type { ResourceSet } from './translate.js';

interface Entry<T> {
  readonly key: string;
  readonly value: T;
}

class KeyedMemo<T> {
  private entries = new Map<string, Entry<T>>();
  private used = new Map<string, Entry<T>>();

  get(node: TunnelNode, build: () => T): T {
    const key = JSON.stringify(node);
    const hit = this.entries.get(node.name);
    const entry = hit?.key === key ? hit : { key, value: build() };
    this.used.set(node.name, entry);
    return entry.value;
  }

  /** Keeps what the last translation used, and nothing else (a node gone is forgotten). */
  sweep(): void {
    this.entries = this.used;
    this.used = new Map();
  }
}

export class TranslationMemo {
  private settings: Settings | undefined;
  private edges = new KeyedMemo<ResourceSet>();
  private hosts = new KeyedMemo<Uint8Array>();

  /** Starts a translation with `settings`: entries built with other settings are dropped. */
  begin(settings: Settings): void {
    if (this.settings === settings) return;
    this.settings = settings;
    this.edges = new KeyedMemo();
    this.hosts = new KeyedMemo();
  }

  edge(node: TunnelNode, build: () => ResourceSet): ResourceSet {
    return this.edges.get(node, build);
  }

  virtualHost(node: TunnelNode, build: () => Uint8Array): Uint8Array {
    return this.hosts.get(node, build);
  }

  /** Ends a translation: entries of nodes it did not use are forgotten. */
  end(): void {
    this.edges.sweep();
    this.hosts.sweep();
  }
}
