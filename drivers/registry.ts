// Drivers by backend URL scheme. An unknown scheme is a clear error.
import type { Driver } from '../src/mvcc/driver';
import { MemoryDriver } from './memory/memory-driver';

export class BackendError extends Error {}

export interface BackendOptions {
  /** Where "<data-dir>/state.db"-style defaults live. */
  dataDir: string;
}

export function createDriver(backend: string, _opts: BackendOptions): Driver {
  const scheme = /^([a-z0-9+]+):/i.exec(backend)?.[1]?.toLowerCase() ?? backend.toLowerCase();
  switch (scheme) {
    case 'memory':
      return new MemoryDriver();
    default:
      throw new BackendError(`unknown backend "${redact(backend)}": use "memory"`);
  }
}

/** A backend URL fit for logs: the password replaced. */
export function redact(backend: string): string {
  return backend.replace(/^([a-z0-9+]+:\/\/[^:/@]*):[^@/]*@/i, '$1:***@');
}
