// Test helpers shared by the source tests.

import type { SourceLogger } from './source.js';

export interface LogEntry {
  readonly level: 'info' | 'warn' | 'error';
  readonly obj: object;
  readonly msg: string;
}

/** A SourceLogger that keeps every entry for assertions. */
export class CapturingLogger implements SourceLogger {
  readonly entries: LogEntry[] = [];
  info(obj: object, msg: string): void {
    this.entries.push({ level: 'info', obj, msg });
  }
  warn(obj: object, msg: string): void {
    this.entries.push({ level: 'warn', obj, msg });
  }
  error(obj: object, msg: string): void {
    this.entries.push({ level: 'error', obj, msg });
  }
  /** Everything logged at `level`, flattened to one searchable string per entry. */
  text(level: LogEntry['level']): string[] {
    return this.entries.filter((e) => e.level === level).map((e) => `${e.msg} ${JSON.stringify(e.obj)}`);
  }
}
