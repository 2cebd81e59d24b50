/**
 * @module collector/journal/samples
 * Valid sample events for every op, deterministic from a number: used by the journal's tests,
 * the fuzz test (as seeds to mutate) and the journal benchmark. Not used at run time.
 */
import { OPS, SCHEMA_VERSION, type Op, type ProvEvent } from '../events.js';

const file = (i: number) => ({ dev: 0xfe00, ino: 1000 + i, parent: 2, name: `f${i}.txt`, path: `/tmp/w/f${i}.txt`, type: 0o100000 });

/** A valid event of `op`, varied by `i` (seq is i + 1, ts grows with i). */
export function sampleEvent(op: Op, i: number, src: 'ebpf' | 'provfs' = 'ebpf'): ProvEvent {
  const base = { v: SCHEMA_VERSION, src, seq: i + 1, ts: 1_000_000 + i * 1000, host: 'h1', pid: 100 + (i % 50), tid: 100 + (i % 50), comm: 'sh' };
  switch (op) {
    case 'fork': return { ...base, op, child: 200 + i, childTid: 200 + i, thread: false };
    case 'exec': return { ...base, op, filename: '/usr/bin/cc', argv: ['cc', '-c', `f${i}.c`], cwd: '/tmp/w', uid: 1000, gid: 1000, env: ['PATH=/usr/bin'] };
    case 'exit': return { ...base, op, code: 0, group: true };
    case 'pipe': return { ...base, op, fds: [3, 4], ino: 5000 + i };
    case 'dup': return { ...base, op, oldfd: 3, newfd: 1 };
    case 'socket': case 'accept': case 'connect': return { ...base, op, fd: 5, ino: 7000 + i, family: 1, type: 1 };
    case 'sendmsg': case 'recvmsg': return { ...base, op, fd: 5, sock: 7000 + i, bytes: 10, fds: [6], files: [file(i)] };
    case 'open': return { ...base, op, file: file(i), flags: 0, fd: 3 };
    case 'close': return { ...base, op, fd: 3 };
    case 'create': return { ...base, op, file: file(i), mode: 0o644 };
    case 'mkdir': return { ...base, op, file: { ...file(i), type: 0o040000 }, mode: 0o755 };
    case 'symlink': return { ...base, op, file: file(i), target: '../x' };
    case 'link': return { ...base, op, file: file(i) };
    case 'rename': return { ...base, op, file: file(i), from: { parent: 2, name: `tmp${i}`, path: `/tmp/w/tmp${i}` }, flags: 0 };
    case 'unlink': return { ...base, op, file: file(i), deleted: true };
    case 'rmdir': return { ...base, op, file: file(i) };
    case 'setattr': return { ...base, op, file: file(i), mode: 0o600 };
    case 'lost': return { ...base, op, count: 3, from: 10, to: 20, reason: 'ring buffer full' };
  }
}

/** A valid event cycling through every op. */
export function anySampleEvent(i: number, src: 'ebpf' | 'provfs' = 'ebpf'): ProvEvent {
  return sampleEvent(OPS[i % OPS.length]!, i, src);
}
