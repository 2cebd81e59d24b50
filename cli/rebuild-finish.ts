/**
 * @module cli/rebuild-finish
 * The background half of `prov rebuild` (started by cli/actions/rebuild, detached, output to
 * <home>/rebuild/finish.log): ingest the records the re-run commands left in the journal, plan
 * the target again and stamp what is up to date, then release the store's pending-ingest marker
 * (graph/sqlite/pending) that made everyone opening the store wait for this. On failure the
 * marker stays, naming a dead process: the next rebuild does the ingest itself and says why.
 * Usage (internal): node rebuild-finish.js CONFIG_JSON TARGET
 */
import type { ProvConfig } from './config.js';

const [cfgJson, target] = process.argv.slice(2);
const cfg = JSON.parse(cfgJson ?? '{}') as ProvConfig;
const { sqlitePath } = await import('../collector/rebuild/fingerprint.js');
const { pendingState, releasePending } = await import('../graph/sqlite/pending.js');
const db = sqlitePath(cfg.store ?? '');
if (!db || !target) {
  process.stderr.write('prov rebuild-finish: usage: rebuild-finish.js CONFIG_JSON TARGET\n');
  process.exit(2);
}
// The parent names this process in the marker right after starting it.
const deadline = Date.now() + 10_000;
for (;;) {
  const st = pendingState(db);
  if (st.state !== 'none' && st.holder.pid === process.pid) break;
  if (Date.now() > deadline || st.state === 'none') {
    process.stderr.write(`${new Date().toISOString()} prov rebuild-finish: the marker was never handed over (${st.state}); nothing done\n`);
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 1));
}
try {
  const { ingestAndStamp, stampPath } = await import('./actions/rebuild.js');
  const { loadStamps } = await import('../collector/rebuild/stamp.js');
  const after = await ingestAndStamp(cfg, target, loadStamps(stampPath(cfg)), true);
  const still = after?.decisions.filter((x) => x.stale) ?? [];
  if (still.length) {
    process.stderr.write(`${new Date().toISOString()} prov rebuild ${target}: ${still.length} commands still look stale after the run: ${still.map((x) => `\`${x.cmd.argv.join(' ')}\` (${x.reasons[0]})`).join('; ')}\n`);
  }
  releasePending(db, process.pid);
} catch (err) {
  process.stderr.write(`${new Date().toISOString()} prov rebuild ${target}: ingest failed, left for the next rebuild: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
