/**
 * @module graph/open
 * Open a graph store by URL: `sqlite:PATH` (the embedded default).
 */
import { InputError } from './errors.js';
import type { GraphStore } from './store.js';

export async function openStore(url: string): Promise<GraphStore> {
  if (url.startsWith('sqlite:')) {
    const { openSqliteStore } = await import('./sqlite/index.js');
    return openSqliteStore(url.slice('sqlite:'.length));
  }
  throw new InputError(`unsupported store URL "${url}" (expected sqlite:PATH)`, '--store');
}
