/**
 * @module cli/actions/verify
 * `prov verify [JOURNAL]`: walk every stream's hash chain and say whether the journal is intact.
 * One line for humans (or the full report with --json); the exit code says the verdict:
 * 0 clean, 5 (EXIT.integrity) not clean, 3 (EXIT.notFound) no journal there.
 * What the chain cannot detect is spelled out in collector/journal/verify.ts; the report's
 * per-stream `head` (last seq and seal) is what to keep elsewhere as an external anchor.
 */
import { readFileSync } from 'node:fs';
import { verifyJournal, type Anchor, type VerifyReport } from '../../collector/journal/verify.js';
import { EXIT, InputError, exitCodeOf } from '../../graph/errors.js';

/**
 * Read an anchor file: the JSON of an earlier `prov verify --json` (its streams' `head`s), or a
 * plain `{ "<stream>": { "seq": N, "seal": "<hex>" } }` map.
 */
export function readAnchors(path: string): Record<string, Anchor> {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new InputError(`cannot read the anchor file: ${(e as Error).message}`, path);
  }
  const out: Record<string, Anchor> = {};
  const put = (stream: unknown, h: unknown): void => {
    const a = h as Partial<Anchor> | null;
    if (typeof stream !== 'string' || !a || !Number.isSafeInteger(a.seq) || typeof a.seal !== 'string' || !/^[0-9a-fA-F]{64}$/.test(a.seal)) {
      throw new InputError(`anchor for stream ${JSON.stringify(stream)} needs a seq and a 64-hex-digit seal`, path);
    }
    out[stream] = { seq: a.seq!, seal: a.seal };
  };
  if (data && typeof data === 'object' && Array.isArray((data as { streams?: unknown }).streams)) {
    for (const s of (data as { streams: Array<{ stream?: unknown; head?: unknown }> }).streams) if (s.head) put(s.stream, s.head);
  } else if (data && typeof data === 'object' && !Array.isArray(data)) {
    for (const [k, v] of Object.entries(data)) put(k, v);
  } else {
    throw new InputError('the anchor file is not a prov verify report nor a stream → {seq, seal} map', path);
  }
  return out;
}

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

/**
 * Verify the journal at `journalDir`; prints the verdict and returns the exit code. `anchor`
 * names a file holding an earlier `--json` report (or stream → {seq, seal}) kept elsewhere.
 */
export default async function verify(journalDir: string, opts: { json?: boolean; anchor?: string } = {}): Promise<number> {
  let report: VerifyReport;
  try {
    report = verifyJournal(journalDir, opts.anchor ? { anchors: readAnchors(opts.anchor) } : {});
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
