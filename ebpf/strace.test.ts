/**
 * @module ebpf/strace.test
 * Cross-check against `strace -f` on the same run: every successful exec, fork/clone, pipe,
 * dup (dup/dup2/dup3/fcntl F_DUPFD*), rename, unlink and attribute change (chmod, chown, utimes,
 * truncate and their f*, *at variants: counted per process and family) strace saw must be in the
 * eBPF capture,
 * and the capture must show none strace did not see (for the processes strace traced).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProvEvent } from '../collector/events.js';
import { runCaptured } from './run-captured.js';

const WORKLOAD = `
set -e
printf 'b\\na\\n' > in.txt
cat in.txt | sort | tr a-z A-Z > out.txt 2>/dev/null
dash -c 'cat < in.txt > d1.txt; ls -d . 2>&1 >/dev/null | cat'
cp out.txt copy.txt
mv copy.txt moved.txt
mv -f moved.txt out.txt
ln out.txt hard.txt
rm hard.txt d1.txt
mkdir sub && rmdir sub
/usr/bin/python3 -c 'import threading, subprocess, os
t = threading.Thread(target=lambda: None); t.start(); t.join()
subprocess.run(["/bin/true"])
r, w = os.pipe(); os.dup2(r, 9); os.dup2(9, 9); os.close(9)
os.rename("out.txt", "final.txt"); os.unlink("final.txt")
fd = os.open("in.txt", os.O_RDWR); os.fchmod(fd, 0o640); os.fchown(fd, 7, -1); os.ftruncate(fd, 100); os.utime(fd); os.close(fd)
os.truncate("in.txt", 3); os.utime("in.txt", ns=(1, 2)); os.chmod("in.txt", 0o600)'
chmod 604 in.txt
chown 5:6 in.txt
touch -m -d '2001-02-03 04:05' in.txt
truncate -s 50 in.txt
( exit 0 ) &
wait
`;

type Key = string;
interface Facts { execs: Set<Key>; forks: Set<Key>; pipes: Set<Key>; dups: Set<Key>; renames: Set<Key>; unlinks: Set<Key>; setattrs: Set<Key> }
const empty = (): Facts => ({ execs: new Set(), forks: new Set(), pipes: new Set(), dups: new Set(), renames: new Set(), unlinks: new Set(), setattrs: new Set() });
const SETATTR_CALLS: Record<string, string> = {
  chmod: 'chmod', fchmod: 'chmod', fchmodat: 'chmod', fchmodat2: 'chmod',
  chown: 'chown', fchown: 'chown', lchown: 'chown', fchownat: 'chown',
  utimensat: 'utimes', utimes: 'utimes', utime: 'utimes', futimesat: 'utimes',
  truncate: 'truncate', ftruncate: 'truncate',
};
const SETATTR_TRACE = Object.keys(SETATTR_CALLS).filter((c) => c !== 'fchmodat2').join(','); // strace 6.1 lacks its name
/** Attribute changes by fd carry no name in strace: count them, nth of its family per thread. */
function counter(): (pid: string | number, family: string) => Key {
  const n = new Map<string, number>();
  return (pid, family) => {
    const k = `${pid} ${family}`;
    n.set(k, (n.get(k) ?? 0) + 1);
    return `${k} #${n.get(k)}`;
  };
}
const base = (p: string) => p.replace(/\/+$/, '').split('/').pop() ?? p;
const unq = (s: string) => JSON.parse(s) as string;

/** Parse `strace -f` output (joining unfinished/resumed halves) into facts by pid. */
function parseStrace(text: string): { facts: Facts; pids: Set<number> } {
  const f = empty();
  const pids = new Set<number>();
  const pending = new Map<string, string>();
  const nth = counter();
  for (const raw of text.split('\n')) {
    let m = /^(\d+)\s+(.*)$/.exec(raw);
    if (!m) continue;
    const pid = m[1]!;
    let line = m[2]!;
    if (line.endsWith('<unfinished ...>')) { pending.set(pid, line.slice(0, -'<unfinished ...>'.length).trimEnd()); continue; }
    const res = /^<\.\.\. \w+ resumed>(.*)$/.exec(line);
    if (res) { line = (pending.get(pid) ?? '') + res[1]; pending.delete(pid); }
    m = /^(\w+)\((.*)\)\s+=\s+(-?\d+)/.exec(line);
    if (!m) continue;
    const [, call, args, retS] = m as unknown as [string, string, string, string];
    const ret = Number(retS);
    pids.add(Number(pid));
    if (ret < 0) continue;
    if (call === 'execve' || call === 'execveat') {
      const s = /"((?:[^"\\]|\\.)*)"/.exec(args);
      if (s) f.execs.add(`${pid} ${unq(`"${s[1]}"`)}`);
    } else if (call === 'clone' || call === 'clone3' || call === 'fork' || call === 'vfork') {
      f.forks.add(`${pid} ${ret}`);
    } else if (call === 'pipe' || call === 'pipe2') {
      const p = /^\[(\d+), (\d+)\]/.exec(args);
      if (p) f.pipes.add(`${pid} ${p[1]} ${p[2]}`);
    } else if (call === 'dup' || call === 'dup2' || call === 'dup3' || (call === 'fcntl' && /F_DUPFD/.test(args))) {
      const old = args.split(',')[0]!.trim();
      if (Number(old) !== ret) f.dups.add(`${pid} ${old} ${ret}`); // dup2(fd, fd) changes nothing: not an event
    } else if (call === 'rename' || call === 'renameat' || call === 'renameat2') {
      const s = [...args.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((x) => unq(`"${x[1]}"`));
      f.renames.add(`${pid} ${base(s[0]!)} ${base(s[1]!)}`);
    } else if (SETATTR_CALLS[call]) {
      f.setattrs.add(nth(pid, SETATTR_CALLS[call]!));
    } else if (call === 'unlink' || call === 'unlinkat' || call === 'rmdir') {
      const s = /"((?:[^"\\]|\\.)*)"/.exec(args);
      if (s) f.unlinks.add(`${pid} ${base(unq(`"${s[1]}"`))}`);
    }
  }
  return { facts: f, pids };
}

/** The same facts from captured events, keyed by thread id as strace does. */
function fromEvents(events: ProvEvent[], pids: Set<number>): Facts {
  const f = empty();
  const nth = counter();
  for (const e of events) {
    if (!pids.has(e.tid)) continue;
    switch (e.op) {
      case 'exec': f.execs.add(`${e.tid} ${e.filename}`); break;
      case 'fork': f.forks.add(`${e.tid} ${e.childTid}`); break;
      case 'pipe': f.pipes.add(`${e.tid} ${e.fds[0]} ${e.fds[1]}`); break;
      case 'dup': f.dups.add(`${e.tid} ${e.oldfd} ${e.newfd}`); break;
      case 'rename': f.renames.add(`${e.tid} ${e.from.name} ${e.file.name}`); break;
      case 'unlink': case 'rmdir': f.unlinks.add(`${e.tid} ${e.file.name}`); break;
      case 'setattr': {
        // chown may also report a mode (set-id bits cleared): the family is the first match
        const family = e.size !== undefined ? 'truncate' : e.uid !== undefined || e.gid !== undefined ? 'chown' : e.mode !== undefined ? 'chmod' : 'utimes';
        f.setattrs.add(nth(e.tid, family));
        break;
      }
    }
  }
  return f;
}

test('capture sees the same execs, forks, pipes, dups, renames, unlinks and attribute changes as strace -f', async (t) => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'prov-strace-')));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(dir, 'workload.sh');
  writeFileSync(script, WORKLOAD);
  const log = join(dir, 'strace.log');
  const run = await runCaptured(['strace', '-f', '-qq', '-s', '256', '-o', log,
    '-e', `trace=process,pipe,pipe2,dup,dup2,dup3,fcntl,rename,renameat,renameat2,unlink,unlinkat,rmdir,${SETATTR_TRACE}`,
    'bash', script], { cwd: dir });
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(run.rejected, []);
  assert.equal(run.drain.lost, 0);
  const { facts: st, pids } = parseStrace(readFileSync(log, 'utf8'));
  assert.ok(pids.size >= 8, `strace saw only ${pids.size} processes`);
  const cap = fromEvents(run.events, pids);
  for (const k of Object.keys(st) as (keyof Facts)[]) {
    if (process.env.PROV_DEBUG) console.log(k, [...st[k]].join(" | "));
    assert.ok(st[k].size > 0, `the workload made no ${k} (strace saw none)`);
    const missing = [...st[k]].filter((x) => !cap[k].has(x));
    const extra = [...cap[k]].filter((x) => !st[k].has(x));
    assert.deepEqual(missing, [], `${k} strace saw but capture missed`);
    assert.deepEqual(extra, [], `${k} capture has but strace did not see`);
  }
});
