/**
 * @module graph/open
 * Opens the graph store a URL names — what `prov --store URL` accepts:
 * - `sqlite:PATH` (or a bare path): the embedded SQLite store, the default;
 * - `bolt://…`, `neo4j://…` (and their `+s`/`+ssc` TLS forms): a Neo4j server. Credentials
 *   come from the environment — NEO4J_USER (default `neo4j`) and NEO4J_PASSWORD, or
 *   NEO4J_PASSWORD_FILE naming a file that holds the password — never from the command line,
 *   where every local user can read them in the process list. A URL carrying `user:password@`
 *   is refused for that reason. No credentials at all: an auth-less server.
 *
 * Each store's module (and its driver) is loaded only when a URL asks for it.
 */
import { readFileSync, statSync } from 'node:fs';
import { logger } from '../collector/log.js';
import { InputError } from './errors.js';
import type { GraphStore } from './store.js';
import type { Neo4jModule } from './neo4j/driver.js';

const log = logger('store');

const NEO4J_SCHEMES = ['bolt:', 'bolt+s:', 'bolt+ssc:', 'neo4j:', 'neo4j+s:', 'neo4j+ssc:'];

export interface OpenStoreOptions {
  /** Where credentials are read from (default `process.env`). */
  env?: NodeJS.ProcessEnv;
  /** The neo4j-driver module for bolt/neo4j URLs (tests pass neo4j-driver 4.0.x). */
  neo4jDriver?: Neo4jModule;
}

export interface Neo4jCredentials {
  user?: string;
  password?: string;
}

/** Credentials for a Neo4j URL from the environment (see the module comment). */
export function neo4jCredentials(env: NodeJS.ProcessEnv = process.env): Neo4jCredentials {
  const user = env.NEO4J_USER || undefined;
  let password = env.NEO4J_PASSWORD || undefined;
  const file = env.NEO4J_PASSWORD_FILE;
  if (file) {
    if (password !== undefined) throw new InputError('set NEO4J_PASSWORD or NEO4J_PASSWORD_FILE, not both', 'environment');
    try {
      if ((statSync(file).mode & 0o077) !== 0) log.warn(`${file}: the Neo4j password file is readable by others (chmod 600 it)`);
      // One trailing newline is how `echo` writes it, not part of the password.
      password = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new InputError(`cannot read the Neo4j password file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, `NEO4J_PASSWORD_FILE=${file}`);
    }
  }
  if (user === undefined && password === undefined) return {};
  return { user: user ?? 'neo4j', password: password ?? '' };
}

/** The store a URL names; an unreachable server is a StoreError, a malformed URL an InputError. */
export async function openStore(url: string, opts: OpenStoreOptions = {}): Promise<GraphStore> {
  if (typeof url !== 'string' || url.trim() === '') throw new InputError('the store URL is empty', '--store');
  const scheme = /^([a-z][a-z0-9+.-]*:)/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined || scheme === 'sqlite:') {
    const path = scheme ? url.slice(scheme.length) : url;
    if (path === '') throw new InputError('sqlite: needs a file path, e.g. sqlite:/var/lib/prov/graph.db', '--store');
    const { openSqliteStore } = await import('./sqlite/index.js');
    return openSqliteStore(path);
  }
  if (NEO4J_SCHEMES.includes(scheme)) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new InputError(`not a valid URL: ${JSON.stringify(url)}`, '--store');
    }
    if (parsed.username || parsed.password) {
      throw new InputError('credentials do not belong in the store URL (visible to every user in the process list); use NEO4J_USER with NEO4J_PASSWORD or NEO4J_PASSWORD_FILE', '--store');
    }
    const creds = neo4jCredentials(opts.env);
    const { openNeo4jStore } = await import('./neo4j/store.js');
    return openNeo4jStore(url, { ...creds, ...(opts.neo4jDriver ? { driver: opts.neo4jDriver } : {}) });
  }
  throw new InputError(`unknown store ${JSON.stringify(scheme)}: use sqlite:PATH, bolt://HOST:PORT or neo4j://HOST:PORT`, '--store');
}
