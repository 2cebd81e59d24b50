/**
 * @module graph/sqlite/checkpoint
 * The store's checkpoint (journal position per stream) read with nothing but the SQLite driver:
 * for callers that only need to know whether the store moved on (`prov rebuild` keys its cached
 * plans by it) and would otherwise load the whole store module for one query. The driver is
 * loaded with require and handed its native addon's path (skipping the `bindings` search):
 * about a third of the cost of `import` from ES module code.
 */
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import type { Checkpoint } from '../model.js';

const require = createRequire(import.meta.url);

/**
 * The checkpoint of the SQLite store at `path` (the same object, key order included, as
 * GraphStore.checkpoint()), or null when the file is missing or not a store this build reads.
 */
export function readCheckpoint(path: string): Checkpoint | null {
  let db: BetterSqlite3.Database | null = null;
  try {
    const Database = require('better-sqlite3') as typeof BetterSqlite3;
    let nativeBinding: string | undefined;
    try { nativeBinding = require.resolve('better-sqlite3/build/Release/better_sqlite3.node'); } catch { /* let the driver find it */ }
    db = new Database(path, { readonly: true, fileMustExist: true, nativeBinding });
    const cp: Checkpoint = {};
    for (const r of db.prepare('SELECT stream, seq FROM checkpoint ORDER BY stream').all() as Array<{ stream: string; seq: number }>) cp[r.stream] = r.seq;
    return cp;
  } catch {
    return null;
  } finally {
    db?.close();
  }
}
