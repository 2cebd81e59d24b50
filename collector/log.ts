/**
 * @module collector/log
 * The one logger. Lines go to stderr; colour only when stderr is a TTY and not in CI.
 * PROV_LOG=debug|info|warn|error sets the level (default info); PROV_LOG=silent mutes it.
 */
const LEVELS = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
type Level = Exclude<keyof typeof LEVELS, 'silent'>;

const colourOn = Boolean(process.stderr.isTTY) && !process.env.CI && !process.env.NO_COLOR;
const paint: Record<Level, string> = { debug: '\x1b[2m', info: '', warn: '\x1b[33m', error: '\x1b[31m' };

function threshold(): number {
  const want = (process.env.PROV_LOG ?? 'info') as keyof typeof LEVELS;
  return LEVELS[want] ?? LEVELS.info;
}

function emit(level: Level, scope: string, msg: string): void {
  if (LEVELS[level] < threshold()) return;
  const line = `prov ${scope}: ${level === 'info' ? '' : level + ': '}${msg}`;
  process.stderr.write(colourOn && paint[level] ? `${paint[level]}${line}\x1b[0m\n` : `${line}\n`);
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
