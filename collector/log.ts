/**
 * @module collector/log
 * The one logger. Lines go to stderr; colour only when stderr is a TTY and not in CI.
 * PROV_LOG=debug|info|warn|error sets the level (default info); PROV_LOG=silent mutes it.
 */
import { writeSync } from 'node:fs';

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
type Level = Exclude<keyof typeof LEVELS, 'silent'>;

const colourOn = Boolean(process.stderr.isTTY) && !process.env.CI && !process.env.NO_COLOR;
const paint: Record<Level, string> = { debug: '\x1b[2m', info: '', warn: '\x1b[33m', error: '\x1b[31m' };

function threshold(): number {
  const want = (process.env.PROV_LOG ?? 'info') as keyof typeof LEVELS;
  return LEVELS[want] ?? LEVELS.info;
}

/**
 * A line that cannot be written must not end the process: a daemon's stderr is often a log file
 * on the disk whose filling up it is reporting, and a failed write to process.stderr is an
 * 'error' event that, unheard, kills node (a capture collector died so). Once the stream has
 * failed, lines go straight to fd 2, each on its own, dropped while there is no room.
 */
let stderrFailed = false;
process.stderr.on('error', () => { stderrFailed = true; });

function writeLine(text: string): void {
  if (!stderrFailed && !process.stderr.destroyed) {
    process.stderr.write(text);
    return;
  }
  try { writeSync(2, text); } catch { /* nowhere to write it */ }
}

function emit(level: Level, scope: string, msg: string): void {
  if (LEVELS[level] < threshold()) return;
  const line = `prov ${scope}: ${level === 'info' ? '' : level + ': '}${msg}`;
  writeLine(colourOn && paint[level] ? `${paint[level]}${line}\x1b[0m\n` : `${line}\n`);
}

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

/** A logger whose lines say which part of prov speaks (`prov journal: …`). */
export function logger(scope: string): Logger {
  return {
    debug: (m) => emit('debug', scope, m),
    info: (m) => emit('info', scope, m),
    warn: (m) => emit('warn', scope, m),
    error: (m) => emit('error', scope, m),
  };
}

/** True when redraws and colour are allowed (a TTY, not CI). */
export const isInteractive = colourOn;
