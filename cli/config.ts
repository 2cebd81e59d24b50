/**
 * @module cli/config
 * Where prov keeps its state. Every default can be overridden by a flag or the environment:
 * PROV_HOME (default /var/lib/prov), PROV_JOURNAL (default $PROV_HOME/journal),
 * PROV_STORE (default sqlite:$PROV_HOME/graph.db).
 */
import { join, resolve } from 'node:path';

export interface ProvConfig {
  home: string;
  journal: string;
  store: string;
}

export interface ConfigFlags {
  home?: string;
  journal?: string;
  store?: string;
}

export function resolveConfig(flags: ConfigFlags = {}, env: NodeJS.ProcessEnv = process.env): ProvConfig {
  const home = resolve(flags.home ?? env.PROV_HOME ?? '/var/lib/prov');
  const journal = resolve(flags.journal ?? env.PROV_JOURNAL ?? join(home, 'journal'));
  const store = flags.store ?? env.PROV_STORE ?? `sqlite:${join(home, 'graph.db')}`;
  return { home, journal, store };
}
