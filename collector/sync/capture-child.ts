/**
 * @module collector/sync/capture-child
 * eBPF capture in a child process (capture-run.js) for sync's tests and bench: attaching
 * twice in one process is not supported, so each capture lives in its own process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CAPTURE = fileURLToPath(new URL('./capture-run.js', import.meta.url));

/** Start capture into `journal`; resolves once it is attached and draining. */
export function startCaptureChild(journal: string, pinDir: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [CAPTURE, journal, pinDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    c.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    c.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('ready')) resolve(c); });
    c.on('exit', (code) => reject(new Error(`eBPF capture did not start (exit ${code}): ${err.trim()}`)));
  });
}

/** Stop a capture child (detach, drain, close the journal) and wait for it. */
export function stopCaptureChild(c: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (c.exitCode !== null) return resolve();
    c.removeAllListeners('exit');
    c.on('exit', () => resolve());
    c.kill('SIGTERM');
  });
}
