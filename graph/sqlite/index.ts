/**
 * @module graph/sqlite
 * The embedded SQLite GraphStore (the default store).
 */
export { openSqliteStore, SqliteGraphStore, type SqliteStoreOptions } from './store.js';
