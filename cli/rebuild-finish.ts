/**
 * @module cli/rebuild-finish
 * The background half of `prov rebuild` (started by cli/actions/rebuild before its capture
 * attaches, detached, output to <home>/rebuild/finish.log). It loads what the ingest needs while
 * the commands run, then waits for "go" on stdin: by then the parent has named it in the
 * store's pending-ingest marker (graph/sqlite/pending). It ingests the records the commands
 * left in the journal, plans the target again, stamps what is up to date and releases the
 * marker. End of file instead of "go" (the parent ended or did the ingest itself): it exits.
 * On failure the marker stays, naming a dead process: the next rebuild does the ingest itself.
 * Usage (internal): node rebuild-finish.js CONFIG_JSON TARGET
 */
import type { ProvConfig } from './config.js';

const [cfgJson, target] = process.argv.slice(2);
const cfg = JSON.parse(cfgJson ?? '{}') as ProvConfig;
const { sqlitePath } = await import('../collector/rebuild/fingerprint.js');
const db = sqlitePath(cfg.store ?? '');
if (!db || !target) {
  process.stderr.write('prov rebuild-finish: usage: rebuild-finish.js CONFIG_JSON TARGET\n');
  process.exit(2);
}
const go = new Promise<boolean>((resolve) => {
  let got = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d: string) => { got += d; if (got.includes('go\n')) resolve(true); });
  process.stdin.on('end', () => resolve(got.includes('go\n')));
  process.stdin.on('error', () => resolve(false));
});
// Loaded while the parent's commands run.
const loading = Promise.all([
  import('./actions/rebuild.js'), import('../collector/rebuild/stamp.js'), import('../graph/sqlite/pending.js'),
  import('../collector/pipeline.js'), import('./decoders.js'), import('./actions/ingest.js'), import('../graph/sqlite/index.js'),
  import('../collector/rebuild/index.js'),
]);
if (!(await go)) process.exit(0);
process.stdin.destroy();
const [{ ingestAndStamp, stampPath, stillStaleText }, { loadStamps }, { pendingState, releasePending }] = await loading;
const st = pendingState(db);
if (st.state === 'none' || st.holder.pid !== process.pid) {
  process.stderr.write(`${new Date().toISOString()} prov rebuild-finish: told to go but the marker does not name this process (${st.state}); nothing done\n`);
  process.exit(1);
}
try {
  const still = stillStaleText(await ingestAndStamp(cfg, target, loadStamps(stampPath(cfg)), true));
  if (still) process.stderr.write(`${new Date().toISOString()} prov rebuild ${target}: ${still}\n`);
  releasePending(db, process.pid);
} catch (err) {
  process.stderr.write(`${new Date().toISOString()} prov rebuild ${target}: ingest failed, left for the next rebuild: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
