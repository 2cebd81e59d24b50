/**
 * @module cli/time
 * Event times are CLOCK_MONOTONIC nanoseconds of the recording host. People type wall-clock
 * times. We convert with this boot's offset (wall − monotonic), which is exact for events of
 * the current boot of this host; for older boots, pass raw nanoseconds (`ns:123`).
 */
import { InputError } from '../graph/errors.js';

/** Wall-clock ns minus monotonic ns, measured now. */
export function bootOffsetNs(): number {
  const mono = Number(process.hrtime.bigint());
  return Date.now() * 1e6 - mono;
}

const UNITS: Record<string, number> = { s: 1e9, m: 60e9, h: 3600e9, d: 86400e9 };

/**
 * Parse a time flag into monotonic ns: `ns:<n>` (raw), `<n><s|m|h|d>` ago (e.g. `10m`), or any
 * date `Date.parse` accepts (ISO 8601).
 */
export function parseTime(text: string, flag: string): number {
  const raw = /^ns:(\d+)$/.exec(text);
  if (raw) return Number(raw[1]);
  const ago = /^(\d+(?:\.\d+)?)([smhd])$/.exec(text);
  if (ago) return Number(process.hrtime.bigint()) - Number(ago[1]) * UNITS[ago[2]!]!;
  const wall = Date.parse(text);
  if (Number.isNaN(wall)) {
    throw new InputError(`"${text}" is not a time (use ISO 8601, 10m/2h/1d ago, or ns:<monotonic ns>)`, flag);
  }
  return wall * 1e6 - bootOffsetNs();
}

/** Render monotonic ns as local ISO wall time (exact for the current boot). */
export function formatTime(ns: number): string {
  return new Date((ns + bootOffsetNs()) / 1e6).toISOString();
}
