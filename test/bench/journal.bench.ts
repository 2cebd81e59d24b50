/**
 * @module test/bench/journal.bench
 * Journal throughput: append (binary eBPF-style payloads and JSON events) and read
 * (decode + validate), each against a baseline that writes or reads the same bytes with plain
 * fs calls and no framing, checksums, chain, seals or validation, so the ratio is the journal's
 * own cost. Appends are timed until everything is fsync'd (close), the baseline ends with one
 * fsync too. Runs are interleaved (journal, baseline, journal, …); medians and spreads reported.
 * Each figure comes twice: per wall-clock second, and per CPU-second of the process (user +
 * system, all threads), which stays meaningful when the shared machine is loaded (the load
 * average is in the first row's note).
 *
 * Alone: `node dist/test/bench/journal.bench.js [--quick]`.
 */
import { closeSync, fsyncSync, mkdtempSync, openSync, readSync, rmSync, writeSync, readFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CODEC, type PayloadDecoder } from '../../collector/journal/api.js';
import { openJournalWriter } from '../../collector/journal/writer.js';
import { openJournalReader } from '../../collector/journal/reader.js';
import { anySampleEvent } from '../../collector/journal/samples.js';
import { checkEvent } from '../../collector/validate.js';
import type { ProvEvent } from '../../collector/events.js';
import { median, spread, type BenchOptions, type BenchResult, type BenchRow } from './types.js';

const now = (): number => Number(process.hrtime.bigint()) / 1e9;
/** CPU seconds (user + system, all threads) used by this process so far. */
const cpuNow = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };

/** Wall and CPU rates of one timed run. */
class Timer {
  private readonly t0 = now();
  private readonly c0 = cpuNow();
  rates(n: number): { wall: number; cpu: number } {
    return { wall: n / (now() - this.t0), cpu: n / Math.max(1e-6, cpuNow() - this.c0) };
  }
}
const yieldNow = (): Promise<void> => new Promise((r) => setImmediate(r));

/** The decoder both the journal reader and the baseline call for binary records. */
const decodeBinary: PayloadDecoder = (p) => ({
  v: 1, src: 'ebpf', seq: 0, ts: p[0]! * 1000 + p[1]!, host: 'bench', pid: p[2]!, tid: p[2]!, op: 'exit', code: 0, group: true,
});

/** Copies chunks into a 1 MiB buffer and writeSyncs it when full: the cheapest honest writer. */
class RawWriter {
  private buf = Buffer.allocUnsafe(1 << 20);
  private len = 0;
  constructor(private readonly fd: number) {}
  put(b: Uint8Array): void {
    if (this.len + b.length > this.buf.length) this.drain();
    if (b.length > this.buf.length) { writeSync(this.fd, b); return; }
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  putString(s: string): void {
    if (this.len + s.length * 3 > this.buf.length) this.drain();
    this.len += this.buf.write(s, this.len, 'utf8');
  }
  drain(): void {
    let pos = 0;
    while (pos < this.len) pos += writeSync(this.fd, this.buf, pos, this.len - pos);
    this.len = 0;
  }
  close(): void {
    this.drain();
    fsyncSync(this.fd);
    closeSync(this.fd);
  }
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const repeats = opts.quick ? 3 : 5;
  const nBin = opts.quick ? 300_000 : 1_000_000;
  const nJson = opts.quick ? 60_000 : 200_000;
  const batch = 1000;
  const root = mkdtempSync(join(tmpdir(), 'prov-journal-bench-'));
  const loadBefore = loadavg()[0]!;
  const payloads = Array.from({ length: batch }, (_, i) => {
    const b = Buffer.alloc(100, i & 0xff);
    b[0] = i & 0xff; b[1] = (i >> 8) & 0xff; b[2] = 7;
    return b;
  });
  const events: ProvEvent[] = Array.from({ length: nJson }, (_, i) => anySampleEvent(i));
  const keys = ['binAppend', 'binAppendBase', 'jsonAppend', 'jsonAppendBase', 'jsonRead', 'jsonReadBase', 'binRead', 'binReadBase', 'validate'] as const;
  type Key = (typeof keys)[number];
  const samples = Object.fromEntries(keys.map((k) => [k, [] as number[]])) as Record<Key, number[]>;
  const cpuSamples = Object.fromEntries(keys.map((k) => [k, [] as number[]])) as Record<Key, number[]>;
  const record = (k: Key, r: { wall: number; cpu: number }): void => { samples[k].push(r.wall); cpuSamples[k].push(r.cpu); };
  let bytesPerBinRecord = 0;
  try {
    for (let rep = 0; rep < repeats; rep++) {
      const dir = join(root, `r${rep}`);
      // --- binary append: journal, then the same payload bytes raw ---
      {
        const w = openJournalWriter({ dir, stream: 'bin' });
        const t = new Timer();
        for (let i = 0; i < nBin / batch; i++) {
          w.appendEncoded(CODEC.ebpfRaw, payloads);
          if (i % 20 === 19) await yieldNow(); // let group commits run, as a live source would
        }
        await w.close();
        record('binAppend', t.rates(nBin));
      }
      {
        const raw = new RawWriter(openSync(join(root, `raw${rep}.bin`), 'w', 0o600));
        const t = new Timer();
        for (let i = 0; i < nBin / batch; i++) {
          for (const p of payloads) raw.put(p);
          if (i % 20 === 19) await yieldNow();
        }
        raw.close();
        record('binAppendBase', t.rates(nBin));
      }
      // --- JSON append: journal, then JSON.stringify + the same bytes raw (NDJSON) ---
      {
        const w = openJournalWriter({ dir, stream: 'json' });
        const t = new Timer();
        for (let i = 0; i < nJson; i++) {
          w.append(events[i]!);
          if (i % 5000 === 4999) await yieldNow();
        }
        await w.close();
        record('jsonAppend', t.rates(nJson));
      }
      {
        const raw = new RawWriter(openSync(join(root, `raw${rep}.ndjson`), 'w', 0o600));
        const t = new Timer();
        for (let i = 0; i < nJson; i++) {
          raw.putString(JSON.stringify(events[i]!) + '\n');
          if (i % 5000 === 4999) await yieldNow();
        }
        raw.close();
        record('jsonAppendBase', t.rates(nJson));
      }
      // --- JSON read: journal reader (frames, CRC, JSON.parse, validate) vs NDJSON parse + validate ---
      {
        const r = openJournalReader(dir);
        const t = new Timer();
        let n = 0;
        for (let b = r.readBatch(10_000, ['json']); b.length > 0; b = r.readBatch(10_000, ['json'])) n += b.length;
        record('jsonRead', t.rates(n));
        if (n !== nJson || r.stats.rejected !== 0) throw new Error(`journal read back ${n} of ${nJson} JSON records`);
        r.close();
      }
      {
        const t = new Timer();
        const text = readFileSync(join(root, `raw${rep}.ndjson`), 'utf8');
        let n = 0;
        for (let s = 0, e = text.indexOf('\n'); e >= 0; s = e + 1, e = text.indexOf('\n', s)) {
          if (checkEvent(JSON.parse(text.slice(s, e))).ok) n++;
        }
        record('jsonReadBase', t.rates(n));
      }
      // --- binary read: journal reader with the decoder vs raw 100-byte records with the decoder ---
      {
        const r = openJournalReader(dir, { decoders: new Map([[CODEC.ebpfRaw, decodeBinary]]) });
        const t = new Timer();
        let n = 0;
        for (let b = r.readBatch(10_000, ['bin']); b.length > 0; b = r.readBatch(10_000, ['bin'])) n += b.length;
        record('binRead', t.rates(n));
        if (n !== nBin || r.stats.rejected !== 0) throw new Error(`journal read back ${n} of ${nBin} binary records`);
        r.close();
      }
      {
        const fd = openSync(join(root, `raw${rep}.bin`), 'r');
        const buf = Buffer.allocUnsafe(1 << 20);
        const t = new Timer();
        let n = 0;
        let pos = 0;
        for (;;) {
          const got = readSync(fd, buf, 0, buf.length, pos);
          if (got === 0) break;
          const whole = got - (got % 100);
          for (let o = 0; o < whole; o += 100) if (checkEvent(decodeBinary(buf.subarray(o, o + 100), '')).ok) n++;
          pos += whole;
        }
        closeSync(fd);
        record('binReadBase', t.rates(n));
      }
      // --- the validator alone, on parsed events (what every JSON record costs on top of JSON.parse) ---
      {
        const parsed = events.slice(0, 50_000).map((e) => JSON.parse(JSON.stringify(e)) as unknown);
        const t = new Timer();
        let ok = 0;
        for (const e of parsed) if (checkEvent(e).ok) ok++;
        if (ok !== parsed.length) throw new Error('the validator rejected a valid sample');
        record('validate', t.rates(parsed.length));
      }
      bytesPerBinRecord = 120;
      rmSync(dir, { recursive: true, force: true });
      rmSync(join(root, `raw${rep}.bin`), { force: true });
      rmSync(join(root, `raw${rep}.ndjson`), { force: true });
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  const row = (figure: string, a: number[], b: number[], baselineName: string, goal?: string, note?: string): BenchRow => {
    const prov = median(a);
    const baseline = median(b);
    return {
      figure, unit: 'records/s', prov: Math.round(prov), baseline: Math.round(baseline), baselineName,
      ratio: Number((prov / baseline).toFixed(3)), better: 'higher', spread: { prov: Number(spread(a).toFixed(3)), baseline: Number(spread(b).toFixed(3)) },
      repeats, ...(goal ? { goal } : {}), ...(note ? { note } : {}),
    };
  };
  const cpuRow = (r: BenchRow): BenchRow => ({ ...r, unit: 'records per CPU-second' });
  const load = `1-min load average ${loadBefore.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after (2 CPUs)`;
  return {
    name: 'journal',
    rows: [
      row('append binary 100-byte records (framed, CRC-chained, sealed, fsync\'d), batches of 1000', samples.binAppend, samples.binAppendBase,
        'fs.writeSync of the same payload bytes, one fsync', '≥ 1,000,000 records/s', `${nBin} records per run; ${bytesPerBinRecord} bytes per record on disk; ${load}`),
      row('append JSON events (stringify, framed, chained, sealed, fsync\'d)', samples.jsonAppend, samples.jsonAppendBase,
        'JSON.stringify + fs.writeSync of the NDJSON text, one fsync', '≥ 200,000 events/s', `${nJson} events per run`),
      row('read JSON records (CRC check, JSON.parse, validate)', samples.jsonRead, samples.jsonReadBase,
        'readFileSync NDJSON + JSON.parse + validate'),
      row('read binary records (CRC check, decoder, validate)', samples.binRead, samples.binReadBase,
        'readSync of raw 100-byte records + the same decoder + validate'),
      {
        figure: 'validate parsed events (checkEvent, every op)', unit: 'events/s', prov: Math.round(median(samples.validate)), baseline: null,
        ratio: null, better: 'higher', spread: { prov: Number(spread(samples.validate).toFixed(3)) }, repeats,
      },
      // The same runs per CPU-second (user + system, all threads): steadier on a shared machine.
      cpuRow(row('append binary 100-byte records, per CPU-second', cpuSamples.binAppend, cpuSamples.binAppendBase,
        'fs.writeSync of the same payload bytes, one fsync')),
      cpuRow(row('append JSON events, per CPU-second', cpuSamples.jsonAppend, cpuSamples.jsonAppendBase,
        'JSON.stringify + fs.writeSync of the NDJSON text, one fsync')),
      cpuRow(row('read JSON records, per CPU-second', cpuSamples.jsonRead, cpuSamples.jsonReadBase, 'readFileSync NDJSON + JSON.parse + validate')),
      cpuRow(row('read binary records, per CPU-second', cpuSamples.binRead, cpuSamples.binReadBase, 'readSync of raw 100-byte records + the same decoder + validate')),
    ],
    memory: { 'bench process peak RSS': Math.round(process.resourceUsage().maxRSS / 1024) },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await run({ quick: process.argv.includes('--quick') });
  for (const r of result.rows) {
    const base = r.baseline === null ? '' : `  baseline ${r.baseline.toLocaleString('en')} (spread ${r.spread?.baseline})  ratio ${r.ratio}  [${r.baselineName}]`;
    process.stdout.write(`${r.figure}\n  prov ${r.prov.toLocaleString('en')} ${r.unit} (spread ${r.spread?.prov})${base}\n`);
  }
  process.stdout.write(JSON.stringify(result) + '\n');
}
