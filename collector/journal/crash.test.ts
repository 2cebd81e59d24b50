import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CODEC, type PayloadDecoder } from './api.js';
import { openJournalWriter, type JournalWriterHandle } from './writer.js';
import { openJournalReader } from './reader.js';
import { verifyJournal } from './verify.js';
import { sampleEvent, anySampleEvent } from './samples.js';
import { headerOf, listSegments, walkSegment } from './segments.js';
import { HEAD_FILE, decodeHead } from './format.js';
import type { ProvEvent } from '../events.js';

const root = mkdtempSync(join(tmpdir(), 'prov-journal-crash-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** Open a writer while capturing what the logger writes to stderr. */
function openCapturing(dir: string, stream: string): { w: JournalWriterHandle; stderr: string } {
  const saved = process.stderr.write.bind(process.stderr);
  const savedLevel = process.env.PROV_LOG;
  process.env.PROV_LOG = 'info';
  let text = '';
  process.stderr.write = ((chunk: string | Uint8Array) => { text += chunk.toString(); return true; }) as typeof process.stderr.write;
  try {
    return { w: openJournalWriter({ dir, stream }), stderr: text };
  } finally {
    process.stderr.write = saved;
    if (savedLevel === undefined) delete process.env.PROV_LOG; else process.env.PROV_LOG = savedLevel;
  }
}

const decoder: PayloadDecoder = () => sampleEvent('exit', 0) as ProvEvent;

describe('journal crash safety', () => {
  it('kill -9 mid-append: reopen cuts the torn tail with a warning and keeps every committed record', async (t) => {
    const dir = join(root, 'kill');
    const childPath = fileURLToPath(new URL('./crash-child.js', import.meta.url));
    const child = spawn(process.execPath, [childPath, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
    let reported = 0;
    let reports = 0;
    let buffered = '';
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, sig) => resolve(sig)));
    // A follower in this process reads the child's appends live, across rotations.
    const follower = openJournalReader(dir, { decoders: new Map([[CODEC.ebpfRaw, decoder]]) });
    const ac = new AbortController();
    t.after(() => ac.abort());
    let followed = 0;
    const following = (async () => {
      for await (const rec of follower.records({ follow: true, signal: ac.signal, pollMs: 10 })) {
        assert.equal(rec.seq, followed + 1, 'the follower must see every seq once, in order');
        followed = rec.seq;
      }
    })();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the writer child reported no commits within 20 s')), 20_000);
      child.stdout!.on('data', (d: Buffer) => {
        buffered += d.toString();
        const lines = buffered.split('\n');
        buffered = lines.pop()!;
        for (const l of lines) {
          const m = /^durable (\d+)$/.exec(l);
          if (m) { reported = Math.max(reported, Number(m[1])); reports++; }
        }
        if (reports >= 20 && reported >= 20_000) { clearTimeout(timer); resolve(); }
      });
    });
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    await new Promise((res) => setTimeout(res, 100));
    ac.abort();
    await following;
    assert.ok(followed > 0, 'the follower saw nothing');
    assert.equal(follower.stats.rejected, 0, JSON.stringify(follower.rejections.slice(0, 3)));
    follower.close();
    // Lines already in the pipe count too: they were printed only after their commit.
    for (const l of buffered.split('\n')) { const m = /^durable (\d+)$/.exec(l); if (m) reported = Math.max(reported, Number(m[1])); }

    const streamDir = join(dir, 'crash');
    // What the journal itself says is durable (HEAD is updated after each fsync). The child may
    // be killed after a commit and before it prints it, so `reported` can lag behind HEAD.
    let headBytes: Buffer | null = null;
    try { headBytes = readFileSync(join(streamDir, HEAD_FILE)); } catch { /* no HEAD yet */ }
    const head = headBytes ? decodeHead(headBytes) : null;
    const durable = Math.max(reported, head && typeof head !== 'string' ? head.seq : 0);
    const segs = listSegments(streamDir);
    const last = segs[segs.length - 1]!;
    const bytes = readFileSync(last.path);
    let scenario: string;
    if (bytes.length < 72) {
      scenario = `the kill came between creating segment ${last.name} and writing its header (${bytes.length} bytes)`;
    } else {
      const header = headerOf(bytes);
      assert.ok(typeof header !== 'string', String(header));
      const walk = walkSegment(bytes, header);
      if (walk.failure) {
        scenario = `the kill itself left a torn tail at offset ${walk.failure.offset}`;
      } else if (walk.lastSeq > durable) {
        // The kill fell between writes: tear the newest (uncommitted) record as a crash mid-write would.
        let lastOff = -1;
        for (let off = 72; off < walk.end; off += bytes.readUInt32LE(off + 4) + 20) {
          if (bytes[off + 3] === 0) lastOff = off;
        }
        truncateSync(last.path, lastOff + 9);
        scenario = `tore the last record (seq > ${durable}, the durable head) at offset ${lastOff}`;
      } else {
        appendFileSync(last.path, Buffer.from([0xf5, 0x4a, 0, 0, 100, 0, 0, 0, 1, 2, 3]));
        scenario = 'appended a partial frame after the last committed record';
      }
    }

    const { w, stderr } = openCapturing(dir, 'crash');
    assert.ok(w.recovered, `no recovery reported (${scenario})`);
    process.stdout.write(`# crash scenario: ${scenario}; ${reported} records reported committed; follower saw ${followed}; cut ${w.recovered.cutBytes} bytes\n`);
    assert.match(stderr, /prov journal: warn: journal stream crash segment \d+\.seg: (cut a torn tail of \d+ bytes at offset \d+|removed a torn segment of \d+ bytes)/, scenario);
    assert.ok(w.lastSeq >= durable, `lost committed records: last seq ${w.lastSeq} < durable ${durable} (${scenario})`);
    assert.ok(followed <= w.lastSeq, `the follower saw seq ${followed}, which did not survive (last seq ${w.lastSeq})`);
    const next = w.append(anySampleEvent(0));
    assert.equal(next, w.lastSeq);
    await w.close();

    const r = openJournalReader(dir, { decoders: new Map([[CODEC.ebpfRaw, decoder]]) });
    let expect = 1;
    for (const rec of r.readBatch(Number.MAX_SAFE_INTEGER)) {
      assert.equal(rec.seq, expect, 'records must be contiguous from 1');
      expect++;
    }
    assert.ok(expect - 1 >= durable + 1, `read back ${expect - 1} records, ${durable} were committed`);
    assert.equal(r.stats.rejected, 0, JSON.stringify(r.rejections.slice(0, 3)));
    const v = verifyJournal(dir);
    assert.equal(v.ok, true, JSON.stringify(v.problems));
  });

  it('removes a segment whose header never made it to disk', async () => {
    const dir = join(root, 'hdr');
    const w = openJournalWriter({ dir, stream: 's' });
    for (let i = 0; i < 5; i++) w.append(anySampleEvent(i));
    await w.close();
    writeFileSync(join(dir, 's', '00000000000000000006.seg'), Buffer.from('PROVJSEG'), { mode: 0o600 });
    const { w: w2, stderr } = openCapturing(dir, 's');
    assert.match(stderr, /removed a torn segment of 8 bytes/);
    assert.equal(w2.lastSeq, 5);
    w2.append(anySampleEvent(5));
    await w2.close();
    // The writer continues the previous segment (it is not full).
    assert.deepEqual(readdirSync(join(dir, 's')).filter((f) => f.endsWith('.seg')), ['00000000000000000001.seg']);
    assert.equal(verifyJournal(dir).ok, true);
  });

  it('holds back records above HEAD until the writer has committed them, and reopening moves HEAD', async () => {
    const dir = join(root, 'head');
    const w = openJournalWriter({ dir, stream: 's' });
    for (let i = 0; i < 10; i++) w.append(anySampleEvent(i));
    await w.close();
    // As if the crash came after the data's fsync but before HEAD was rewritten: HEAD still empty.
    writeFileSync(join(dir, 's', 'HEAD'), Buffer.alloc(0));
    const before = openJournalReader(dir);
    assert.equal(before.readBatch(100).length, 0, 'records above HEAD must wait');
    const w2 = openJournalWriter({ dir, stream: 's' });
    const r = openJournalReader(dir);
    assert.deepEqual(r.readBatch(100).map((x) => x.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // The held-back reader catches up too.
    assert.equal(before.readBatch(100).length, 10);
    await w2.close();
    assert.equal(verifyJournal(dir).ok, true);
  });

  it('refuses to append after damage that a crash cannot explain', async () => {
    const dir = join(root, 'mid');
    const w = openJournalWriter({ dir, stream: 's' });
    for (let i = 0; i < 20; i++) w.append(anySampleEvent(i));
    await w.close();
    const p = listSegments(join(dir, 's'))[0]!.path;
    const b = readFileSync(p);
    b[200] ^= 0xff;
    writeFileSync(p, b);
    assert.throws(() => openJournalWriter({ dir, stream: 's' }), /not a torn tail; refusing to append/);
  });
});
