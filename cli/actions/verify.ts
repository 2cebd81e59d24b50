/**
 * @module cli/actions/verify
 * `prov verify [JOURNAL]`: walk every stream's hash chain and say whether the journal is intact.
 * One line for humans (or the full report with --json); the exit code says the verdict:
 * 0 clean, 5 (EXIT.integrity) not clean, 3 (EXIT.notFound) no journal there.
 * What the chain cannot detect is spelled out in collector/journal/verify.ts; the report's
 * per-stream `head` (last seq and seal) is what to keep elsewhere as an external anchor.
 */
import { verifyJournal, type VerifyReport } from '../../collector/journal/verify.js';
import { EXIT, exitCodeOf } from '../../graph/errors.js';

function verdict(r: VerifyReport): string {
  const streams = `${r.streams.length} stream${r.streams.length === 1 ? '' : 's'}`;
  const torn = r.streams.filter((s) => s.tornTail);
  const tornNote = torn.length > 0
    ? `; torn tail (an unrecovered crash, cut when the writer reopens) in ${torn.map((s) => `${s.stream}/${s.tornTail!.segment} at offset ${s.tornTail!.offset}`).join(', ')}`
    : '';
  if (r.ok) return `journal ${r.dir}: clean (${streams}, ${r.records} records${tornNote})`;
  const p = r.problems[0]!;
  const more = r.problems.length > 1 ? ` (and problems in ${r.problems.length - 1} more stream${r.problems.length > 2 ? 's' : ''})` : '';
  return `journal ${r.dir}: NOT clean: ${p.kind} record in stream ${p.stream} segment ${p.segment} offset ${p.offset} seq ${p.seq ?? '?'}: ${p.message}${more}`;
}

/** Verify the journal at `journalDir`; prints the verdict and returns the exit code. */
export default async function verify(journalDir: string, opts: { json?: boolean } = {}): Promise<number> {
  let report: VerifyReport;
  try {
    report = verifyJournal(journalDir);
  } catch (e) {
    const code = exitCodeOf(e);
    if (opts.json) process.stdout.write(JSON.stringify({ dir: journalDir, ok: false, error: (e as Error).message }) + '\n');
    else process.stderr.write(`prov verify: ${(e as Error).message}\n`);
    return code;
  }
  if (opts.json) process.stdout.write(JSON.stringify(report) + '\n');
  else process.stdout.write(verdict(report) + '\n');
  return report.ok ? EXIT.ok : EXIT.integrity;
}
