/**
 * @module ebpf/run-captured
 * Run one command under live eBPF capture, only it and its descendants (pid-tree filter), into a
 * real journal, and read the decoded events back. The command is started held (a shell waiting
 * on a line of stdin) so capture is attached before it does anything. Used by tests, the
 * scenario runner and scripts/record-fixtures.sh.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openJournalReader } from '../collector/journal/reader.js';
import type { JournalRecord } from '../collector/journal/api.js';
import type { ProvEvent } from '../collector/events.js';
import { captureToJournal, ebpfDecoders } from './capture.js';
import type { DrainStats } from './drain.js';

export interface RunCapturedOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Keep the journal here (default: a temp dir, deleted afterwards). */
  journalDir?: string;
  pinDir?: string;
  pathPrefix?: string;
  ringBytes?: number;
  /** Kill the command after this long (default 60 s). */
  timeoutMs?: number;
}

export interface CapturedRun {
  /** pid of the command (the root of the captured tree). */
  pid: number;
  code: number | null;
  stdout: string;
  stderr: string;
  events: ProvEvent[];
  records: JournalRecord[];
  /** Records the journal reader rejected (should be 0). */
  rejected: string[];
  drain: DrainStats;
}

/** Run argv under capture and return what was captured. */
export async function runCaptured(argv: string[], opts: RunCapturedOptions = {}): Promise<CapturedRun> {
  const ownJournal = !opts.journalDir;
  const journalDir = opts.journalDir ?? mkdtempSync(join(tmpdir(), 'prov-cap-'));
  const pinDir = opts.pinDir ?? `/sys/fs/bpf/prov-run-${process.pid}`;
  // stdin is a socket (Node's pipes are socketpairs): bash takes that for an rsh/ssh session and
  // sources ~/.bashrc, so the held shell gets --norc and the command stdin from /dev/null (it
  // saw EOF right after the go line anyway). Otherwise a bashrc's own commands (pyenv init, …)
  // are recorded as part of the command's tree.
  const child = spawn('bash', ['--norc', '-c', 'read -r _ || exit 97; exec "$@" </dev/null', 'prov-held', ...argv], {
    cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '', stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const pid = child.pid!;
  let handle: Awaited<ReturnType<typeof captureToJournal>> | null = null;
  try {
    handle = await captureToJournal({ journalDir, pinDir, pidTree: [pid], pathPrefix: opts.pathPrefix, ringBytes: opts.ringBytes ?? 16 << 20 });
    child.stdin.end('\n');
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60000);
    const code = await exited;
    clearTimeout(timer);
    const drain = await handle.stop();
    handle = null;
    const reader = openJournalReader(journalDir, { decoders: ebpfDecoders });
    try {
      const records: JournalRecord[] = [];
      for (;;) {
        const b = reader.readBatch(100000);
        if (!b.length) break;
        records.push(...b);
      }
      return {
        pid, code, stdout, stderr, records, events: records.map((r) => r.event),
        rejected: reader.rejections.map((r) => `${r.stream}:${r.seq} ${r.reason}`), drain,
      };
    } finally {
      reader.close();
    }
  } finally {
    if (handle) await handle.stop().catch(() => undefined);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (ownJournal) rmSync(journalDir, { recursive: true, force: true });
  }
}

/** The events of one process (tgid), in order. */
export function ofPid(events: ProvEvent[], pid: number): ProvEvent[] {
  return events.filter((e) => e.pid === pid);
}

/** Every tgid in the tree rooted at `root`, from the fork events. */
export function treePids(events: ProvEvent[], root: number): Set<number> {
  const pids = new Set([root]);
  for (const e of events) if (e.op === 'fork' && !e.thread && pids.has(e.pid)) pids.add(e.child);
  return pids;
}
