/**
 * @module graph/export/svg
 * SVG through Graphviz: runs `dot -Tsvg` with the DOT text on stdin (no shell, no file names on
 * the command line), for the web UI and `prov export --format svg`.
 */
import { spawn } from 'node:child_process';
import { CapabilityError, ProvError } from '../errors.js';

export interface RenderOptions {
  /** Output format for dot's -T (default 'svg'; 'json' is handy in tests). */
  format?: 'svg' | 'json' | 'plain';
  /** Kill dot after this long (default 30 s): a huge graph must not hang a request. */
  timeoutMs?: number;
  /** The dot executable (default 'dot' on PATH). */
  dotPath?: string;
}

/** Render DOT text with Graphviz. Throws CapabilityError when Graphviz is not installed. */
export function renderDot(dot: string, opts: RenderOptions = {}): Promise<string> {
  const format = opts.format ?? 'svg';
  return new Promise((resolve, reject) => {
    const child = spawn(opts.dotPath ?? 'dot', [`-T${format}`], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.on('error', () => { /* reported through 'close' or 'error' */ });
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === 'ENOENT') reject(new CapabilityError('Graphviz is not installed (no `dot` on PATH): apt-get install graphviz', 'graphviz'));
      else reject(new ProvError(`cannot run dot: ${e.message}`, 'EEXPORT'));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else reject(new ProvError(`dot failed (${signal ?? `exit ${code}`}): ${Buffer.concat(err).toString('utf8').trim().split('\n')[0] ?? ''}`, 'EEXPORT'));
    });
    child.stdin.end(dot, 'utf8');
  });
}
