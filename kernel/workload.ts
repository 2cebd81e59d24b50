/**
 * @module kernel/workload
 * A test workload for live upgrade and crash tests (python3, one thread): keeps files open from
 * before the event (passthrough I/O), appends and re-reads numbered blocks, creates, stats and
 * deletes files w-<i>, until a file STOP appears; reports errors, the longest operation and the
 * hash of what it wrote.
 */
import { spawn } from 'node:child_process';

/**
 * The workload: keeps one file open for writing and one for reading from before the first
 * upgrade, appends numbered blocks, re-reads them, and creates, stats and deletes files w-<i>.
 * Stops when STOP appears; prints counts, errors, the longest operation and the kept file's hash.
 */
export const WORKLOAD = String.raw`
import os, sys, json, time, hashlib
d = sys.argv[1]
P = lambda *x: os.path.join(d, *x)
keep = os.open(P('keep'), os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
ro = os.open(P('ro'), os.O_RDONLY)
ro_data = os.read(ro, 1 << 20)
h = hashlib.sha256(); i = 0; errors = []; worst = 0.0; created = []
print('started', flush=True)
while not os.path.exists(P('STOP')):
    t = time.monotonic()
    try:
        block = (b'%08d' % i) * 512
        os.write(keep, block); h.update(block)
        back = os.pread(keep, len(block), i * len(block))
        if back != block: errors.append('readback %d' % i)
        if os.pread(ro, len(ro_data), 0) != ro_data: errors.append('ro changed %d' % i)
        name = 'w-%d' % i
        fd = os.open(P(name), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600); os.write(fd, b'x'); os.close(fd)
        created.append(name)
        os.stat(P(name)); os.unlink(P(name))
    except OSError as e:
        errors.append('%s at %d' % (e, i))
    worst = max(worst, time.monotonic() - t)
    i += 1
print(json.dumps({'ops': i, 'errors': errors[:10], 'nerrors': len(errors), 'worstMs': worst * 1000, 'hash': h.hexdigest(), 'created': created}), flush=True)
`;

export function startWorkload(dir: string, pids: number[]): { started: Promise<void>; result: Promise<Record<string, unknown>> } {
  const child = spawn('python3', ['-c', WORKLOAD, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  pids.push(child.pid!);
  let out = '', err = '';
  let onStart!: () => void;
  const started = new Promise<void>((r) => { onStart = r; });
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (c: string) => { out += c; if (out.includes('started')) onStart(); });
  child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
  const result = new Promise<Record<string, unknown>>((res, rej) => {
    child.on('exit', (code) => {
      if (code !== 0) return rej(new Error(`workload failed (${code}): ${err}`));
      res(JSON.parse(out.slice(out.indexOf('{'))) as Record<string, unknown>);
    });
  });
  return { started, result };
}

