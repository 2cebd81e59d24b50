/**
 * @module kernel/recorder.test
 * The records prov mode writes in binary in the event ring (open, close, create, setattr, unlink
 * of a known node) decode to byte for byte what the string path writes (but for their timestamps), for names
 * that JSON must escape and numbers of every size, also after a rename; a writer that declines
 * gets the string. The `.lin` log keeps the newest records whole when it wraps and shows them as
 * JSON lines.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as libc from './libc.js';
import { NodeTable, type Node } from './nodes.js';
import { EventRing } from './eventring.js';
import { Recorder, type RecordWriter } from './recorder.js';
import { LinLog } from './linlog.js';
import { PROVFS_BIT, PROVFS_HEADER_BYTES, PROVFS_OP, encodeProvfsFile, provfsRecordText } from '../collector/provfs-record.js';
import { FATTR, FUSE_ROOT_ID } from './protocol.js';

const NAMES = ['plain.txt', 'wé"ird\\name', 'tab\tand\nnewline', 'ctl\u0001\u001f', '日本語ファイル', 'emoji 🎉', "quote'single", 'safe-name_1.o'];

for (const mountpoint of ['/mnt/π', '/']) test(`binary records decode to the string records, but for ts (mounted at ${mountpoint})`, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'prov-recorder-'));
  const rootFd = libc.open(dir, libc.O.PATH | libc.O.DIRECTORY);
  t.after(() => { libc.close(rootFd); rmSync(dir, { recursive: true, force: true }); });
  const nodes = new NodeTable(rootFd);
  mkdirSync(join(dir, 'sub dir "x"'));
  const subFd = libc.open(join(dir, 'sub dir "x"'), libc.O.PATH | libc.O.DIRECTORY);
  const sub = nodes.adopt(subFd, libc.fstat(subFd), FUSE_ROOT_ID, Buffer.from('sub dir "x"'));
  const files: Node[] = [];
  for (const [i, name] of NAMES.entries()) {
    const parent = i % 2 ? sub : null;
    const path = parent ? join(dir, 'sub dir "x"', name) : join(dir, name);
    writeFileSync(path, name);
    const fd = libc.open(path, libc.O.PATH);
    files.push(nodes.adopt(fd, libc.fstat(fd), parent ? parent.id : FUSE_ROOT_ID, Buffer.from(name)));
  }
  const strings: string[] = [];
  const viaString = new Recorder({ dev: 2049, mountpoint, nodes, sink: () => assert.fail('object sink'), sinkJson: (j) => strings.push(j) });
  const ring = EventRing.create(1 << 16);
  let declined = 0;
  let declineNext = false;
  const writer: RecordWriter = {
    begin: (max) => { if (declineNext) { declined++; return false; } return ring.begin(max); },
    bytes: (b) => ring.putBytes(b),
    header: (op, bits, tid, ts, mode, flags, fh) => ring.putProvfsHeader(op, bits, tid, ts, mode, flags, fh),
    file: (dev, ino, parent, type, name, prefix, host) => ring.putProvfsFile(dev, ino, parent, type, name, prefix, host),
    end: () => ring.endRecord(false),
  };
  const fallback: string[] = [];
  const viaBytes = new Recorder({ dev: 2049, mountpoint, nodes, sink: () => assert.fail('object sink'), sinkJson: (j) => fallback.push(j), writer });
  const big = [0, 7, 10, 4095, 2 ** 31, 2 ** 32 - 1, 2 ** 53 - 1];
  for (const [i, n] of files.entries()) {
    // The caller's thread id is a u32 in FUSE's header (and in a binary record's).
    const ctx = { uid: 0, gid: 0, pid: Math.min(big[i % big.length]!, 2 ** 32 - 1) };
    const st = libc.fstat(n.fd);
    // The bytes first for half the files: their file JSON made as bytes, not from a string made before.
    for (const r of i % 2 ? [viaBytes, viaString] : [viaString, viaBytes]) {
      r.create(ctx, { node: n, stat: st }, 0o100644 + i, i % 2 ? undefined : 0o101102 + i, i % 3 ? big[(i + 1) % big.length] : undefined);
      r.open(ctx, n, 0o100000 + i, big[(i + 2) % big.length]!);
      r.close(ctx, n, big[(i + 3) % big.length]!, false);
      r.close(ctx, n, i, true);
      // setattr with each attribute alone and all together (tar -x sets times, mode, owner).
      for (const valid of [FATTR.MODE, FATTR.UID, FATTR.GID, FATTR.SIZE, FATTR.MTIME, FATTR.MTIME_NOW | FATTR.ATIME, FATTR.MODE | FATTR.UID | FATTR.GID | FATTR.SIZE | FATTR.MTIME]) {
        const a = { valid, fh: 0, size: 0n, atime: 0n, atimeNs: 0, mtime: 0n, mtimeNs: 0, mode: 0, uid: 0, gid: 0 };
        r.setattr(ctx, n, a, { ...st, uid: big[i % big.length]! % 2 ** 32, gid: big[(i + 4) % big.length]! % 2 ** 32, size: BigInt(big[(i + 5) % big.length]!), mtimeNs: 999_999_999 - i });
      }
      r.unlink(ctx, n.parent, n.name, { ...st, nlink: i % 2 ? 1 : 2 }, n);
    }
  }
  // A rename anywhere: the file JSON (string and bytes) is made again, with the new name and path.
  nodes.rename(files[0]!, sub.id, Buffer.from('renamed.txt'));
  for (const r of [viaBytes, viaString]) r.open({ uid: 0, gid: 0, pid: 3 }, files[0]!, 0, 9);
  assert.match(strings.at(-1)!, /"name":"renamed\.txt","path":"[^"]*sub dir \\"x\\"\/renamed\.txt"/);
  const records = ring.drain();
  assert.ok(records.every((b) => b[0] === 0xb1), 'every record written in binary');
  const written = records.map(provfsRecordText);
  const noTs = (s: string): string => s.replace(/"ts":\d+/, '"ts":0');
  assert.equal(written.length, strings.length);
  assert.deepEqual(written.map(noTs), strings.map(noTs));
  for (const w of written) JSON.parse(w);
  assert.equal(fallback.length, 0);
  // A writer that declines: the record comes as the string.
  declineNext = true;
  viaBytes.open({ uid: 0, gid: 0, pid: 1 }, files[1]!, 0, 5);
  assert.equal(declined, 1);
  assert.equal(fallback.length, 1);
  viaString.open({ uid: 0, gid: 0, pid: 1 }, files[1]!, 0, 5);
  assert.equal(noTs(fallback[0]!), noTs(strings.at(-1)!));
});

test('.lin keeps the newest whole records when it wraps, binary ones shown as JSON', () => {
  const lin = new LinLog(100);
  const ring = EventRing.create(4096);
  const lines: string[] = [];
  for (let i = 0; i < 40; i++) {
    let line: string;
    if (i % 3 === 0) {
      // A binary record as the loop writes it.
      const file = encodeProvfsFile(1, i, 2, 0o100000, Buffer.from(`n${i}`), Buffer.from('/m/'), Buffer.from('h'))!;
      assert.ok(ring.begin(PROVFS_HEADER_BYTES + file.length));
      ring.putProvfsHeader(PROVFS_OP.close, PROVFS_BIT.fh, 7, i, 0, 0, i);
      ring.putBytes(file);
      ring.endRecord(false);
      lin.append(ring.lastWritten());
      line = provfsRecordText(ring.drain()[0]!);
      assert.match(line, new RegExp(`^\\{"op":"close","file":\\{"dev":1,"ino":${i},`));
    } else {
      line = `{"i":${i},"pad":"${'x'.repeat(i % 11)}"}`;
      if (i % 2) lin.append(Buffer.from(line)); else lin.appendString(line);
    }
    lines.push(line);
    const snap = lin.snapshot().all().toString();
    assert.ok(snap.endsWith('\n'));
    const got = snap.split('\n').filter(Boolean);
    assert.deepEqual(got, lines.slice(lines.length - got.length), 'a tail of what was appended, whole records');
    assert.ok(got.length >= 1);
  }
  // Read in pieces, as READ requests do: the same text.
  const snap = lin.snapshot();
  const whole = lin.snapshot().all();
  const out = Buffer.alloc(whole.length + 10);
  let off = 0;
  for (let n; (n = snap.read(off, 7, out, off)) > 0;) off += n;
  assert.equal(out.subarray(0, off).toString(), whole.toString());
});
