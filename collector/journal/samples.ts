/**
 * @module collector/journal/samples
 * Valid sample events for every op, deterministic from a number: used by the journal's tests,
 * the fuzz test (as seeds to mutate) and the journal benchmark. Not used at run time.
 */
import { OPS, SCHEMA_VERSION, type Op, type ProvEvent } from '../events.js';

const file = (i: number) => ({ dev: 0xfe00, ino: 1000 + i, parent: 2, name: `f${i}.txt`, path: `/tmp/w/f${i}.txt`, type: 0o100000 });

/**
 * A valid event of `op`, varied by `i` (seq is i + 1, ts grows with i). Built as one literal plus
 * assignments, as a source builds its records (V8 gives objects built by spreading a base object
 * slow property stores, which would distort the benchmarks).
 */
export function sampleEvent(op: Op, i: number, src: 'ebpf' | 'provfs' = 'ebpf'): ProvEvent {
  const e: Record<string, unknown> = {
    v: SCHEMA_VERSION, src, seq: i + 1, ts: 1_000_000 + i * 1000, host: 'h1', pid: 100 + (i % 50), tid: 100 + (i % 50), comm: 'sh', op,
  };
  switch (op) {
    case 'fork': e.child = 200 + i; e.childTid = 200 + i; e.thread = false; break;
    case 'exec':
      e.filename = '/usr/bin/cc'; e.argv = ['cc', '-c', `f${i}.c`]; e.cwd = '/tmp/w'; e.uid = 1000; e.gid = 1000; e.env = ['PATH=/usr/bin'];
      break;
    case 'exit': e.code = 0; e.group = true; break;
    case 'pipe': e.fds = [3, 4]; e.ino = 5000 + i; break;
    case 'dup': e.oldfd = 3; e.newfd = 1; break;
    case 'socket': case 'accept': case 'connect': e.fd = 5; e.ino = 7000 + i; e.family = 1; e.type = 1; break;
    case 'sendmsg': case 'recvmsg': e.fd = 5; e.sock = 7000 + i; e.bytes = 10; e.fds = [6]; e.files = [file(i)]; break;
    case 'open': e.file = file(i); e.flags = 0; e.fd = 3; break;
    case 'close': e.fd = 3; break;
    case 'create': e.file = file(i); e.mode = 0o644; break;
    case 'mkdir': e.file = { dev: 0xfe00, ino: 1000 + i, parent: 2, name: `d${i}`, path: `/tmp/w/d${i}`, type: 0o040000 }; e.mode = 0o755; break;
    case 'symlink': e.file = file(i); e.target = '../x'; break;
    case 'link': e.file = file(i); break;
    case 'rename': e.file = file(i); e.from = { parent: 2, name: `tmp${i}`, path: `/tmp/w/tmp${i}` }; e.flags = 0; break;
    case 'unlink': e.file = file(i); e.deleted = true; break;
    case 'rmdir': e.file = file(i); break;
    case 'setattr': e.file = file(i); e.mode = 0o600; break;
    case 'lost': e.count = 3; e.from = 10; e.to = 20; e.reason = 'ring buffer full'; break;
  }
  return e as unknown as ProvEvent;
}

/** A valid event cycling through every op. */
export function anySampleEvent(i: number, src: 'ebpf' | 'provfs' = 'ebpf'): ProvEvent {
  return sampleEvent(OPS[i % OPS.length]!, i, src);
}
