/**
 * @module collector/sync/capture-run
 * eBPF capture into a journal from a process of its own, for the sync tests and bench: prints
 * "ready" once attached and draining, stops (detach, drain, close) on SIGTERM or SIGINT and
 * exits. A process of its own because attaching twice in one process is not supported yet, and
 * because capture excludes the process that attaches it.
 * Usage: node capture-run.js JOURNAL_DIR PIN_DIR
 */
import { captureToJournal } from '../../ebpf/capture.js';

const [journalDir, pinDir] = process.argv.slice(2);
if (!journalDir || !pinDir) {
  process.stderr.write('usage: capture-run JOURNAL_DIR PIN_DIR\n');
  process.exit(2);
}
const h = await captureToJournal({ journalDir, pinDir, env: false });
let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  await h.stop();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
process.stdout.write('ready\n');
setInterval(() => { /* keep the event loop alive until a signal */ }, 1 << 30);
