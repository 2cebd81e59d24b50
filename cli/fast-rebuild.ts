/**
 * @module cli/fast-rebuild
 * `prov rebuild` without loading commander: the no-op rebuild is meant to cost little more than
 * starting node, and building the whole `prov` program (commander and every subcommand's
 * options) is a sixth of what is left. Only the plain forms are taken here —
 * `prov [--home D] [--journal D] [--store URL] rebuild FILE [--dry-run] [--explain] [--json]
 * [--cold] [-j N | --jobs N]`, each option once, values as separate words — with exactly the
 * meaning commander gives them (cli/main.ts); anything else (help, `--opt=value`, an unknown or
 * repeated option, a value starting with `-`) returns null and goes through commander.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { exitCodeOf, ProvError } from '../graph/errors.js';
import { resolveConfig, type ConfigFlags, type ProvConfig } from './config.js';
// What the no-op path needs anyway (small modules): loaded with this one, no await per request.
import { quickCheck, quickPath, type QuickStamp } from '../collector/rebuild/quick.js';
import { sqlitePath, storeFingerprint } from '../collector/rebuild/fingerprint.js';
import { mark, printTimeline } from '../collector/rebuild/trace.js';
import type { RebuildFlags } from './actions/rebuild.js';

const GLOBAL = new Map<string, keyof ConfigFlags>([['--home', 'home'], ['--journal', 'journal'], ['--store', 'store']]);
const FLAGS = new Map<string, 'dryRun' | 'explain' | 'json' | 'cold'>([['--dry-run', 'dryRun'], ['--explain', 'explain'], ['--json', 'json'], ['--cold', 'cold']]);

/** The parsed command line when it is a plain `prov rebuild`, else null. */
export function parseRebuild(args: string[]): { config: ConfigFlags; file: string; flags: RebuildFlags } | null {
  const config: ConfigFlags = {};
  let i = 0;
  for (; i < args.length && args[i] !== 'rebuild'; i += 2) {
    const key = GLOBAL.get(args[i]!);
    const v = args[i + 1];
    if (!key || v === undefined || v.startsWith('-') || config[key] !== undefined) return null;
    config[key] = v;
  }
  if (args[i] !== 'rebuild') return null;
  const flags: RebuildFlags = {};
  let file: string | undefined;
  for (i++; i < args.length; i++) {
    const a = args[i]!;
    const flag = FLAGS.get(a);
    if (flag) {
      if (flags[flag] !== undefined) return null;
      flags[flag] = true;
    } else if (a === '-j' || a === '--jobs') {
      const v = args[++i];
      if (v === undefined || !/^\d+$/.test(v) || flags.jobs !== undefined) return null;
      flags.jobs = Number(v);
    } else if (!a.startsWith('-') && file === undefined) {
      file = a;
    } else return null;
  }
  return file === undefined ? null : { config, file, flags };
}

/**
 * The no-op shortcut (collector/rebuild/quick): "up to date" without loading the rebuild action,
 * when the store is SQLite, no background ingest is pending, and the store's files and every
 * file of the target's commands are as the last rebuild that found them up to date saw them.
 */
function quickUpToDate(cfg: ProvConfig, file: string): QuickStamp | null {
  const db = sqlitePath(cfg.store);
  if (!db || existsSync(`${db}.ingest-pending`)) return null;
  const fp = storeFingerprint(cfg.store);
  if (!fp) return null;
  const target = resolve(file);
  return quickCheck(quickPath(cfg.home, target), target, fp);
}

/** The rebuild action once loaded (a resident server asks for it on every request). */
let rebuildAction: typeof import('./actions/rebuild.js').default | undefined;

/**
 * Run `prov rebuild` when argv is a plain one: returns its exit code (errors are one line on
 * stderr, as cli/main.ts prints them), or null for commander to handle. The rebuild server
 * (cli/rebuild-server) runs its requests through here too, with `overrides` saying what the
 * client's terminal is and whether the client found the no-op shortcut not to apply already.
 */
export async function fastRebuild(argv: string[], overrides: Pick<RebuildFlags, 'progress' | 'client' | 'selfStarted'> & { skipShortcut?: boolean } = {}): Promise<number | null> {
  const p = parseRebuild(argv.slice(2));
  if (!p) return null;
  const { skipShortcut, ...flagOverrides } = overrides;
  Object.assign(p.flags, flagOverrides);
  mark('cli parsed');
  try {
    const cfg = resolveConfig(p.config);
    // The rebuild server's client may have looked already (and found the target changed).
    if (!skipShortcut && !p.flags.dryRun && !p.flags.explain && !p.flags.json) {
      const upToDate = quickUpToDate(cfg, p.file);
      if (upToDate !== null) {
        if (upToDate.hazards.length) process.stderr.write(upToDate.hazards.join('\n') + '\n');
        process.stdout.write(`${p.file}: up to date (${upToDate.commands} recorded commands)\n`);
        mark('answered from the no-op shortcut');
        return 0;
      }
    }
    const action = (rebuildAction ??= (await import('./actions/rebuild.js')).default);
    mark('rebuild modules loaded');
    return await action(cfg, p.file, p.flags);
  } catch (err) {
    const msg = err instanceof ProvError || err instanceof Error ? err.message : String(err);
    process.stderr.write(`prov: ${msg}\n`);
    if (process.env.PROV_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return exitCodeOf(err);
  } finally {
    mark('exit');
    printTimeline();
  }
}
