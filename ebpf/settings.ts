/**
 * @module ebpf/settings
 * Capture filters, fixed before the programs load: the bytes of `struct prov_settings`
 * (ebpf/prov.h), written into the object's .rodata so the verifier prunes what is off.
 */
import { InputError } from '../graph/errors.js';

export const SETTINGS_SIZE = 88;
const PREFIX_MAX = 64;

export interface CaptureSettings {
  /** Capture only tasks in this cgroup v2 (its id: the inode number of its directory). */
  cgroupId?: number;
  /** Capture only these tgids and their descendants (children join at fork). */
  pidTree?: number[];
  /** File events (open, rename, unlink…) only under this absolute path prefix (≤ 64 bytes). */
  pathPrefix?: string;
  /** Record the environment at exec (default true). */
  env?: boolean;
}

/** The struct prov_settings bytes for these settings. */
export function encodeSettings(s: CaptureSettings): Uint8Array {
  const b = Buffer.alloc(SETTINGS_SIZE);
  b.writeBigUInt64LE(BigInt(s.cgroupId ?? 0), 0);
  b.writeUInt32LE(s.pidTree?.length ? 1 : 0, 8);
  const prefix = Buffer.from(s.pathPrefix ?? '', 'utf8');
  if (prefix.length > PREFIX_MAX) throw new InputError(`path prefix is ${prefix.length} bytes, at most ${PREFIX_MAX}`, 'pathPrefix');
  if (prefix.length && prefix[0] !== 0x2f) throw new InputError('path prefix must be absolute', 'pathPrefix');
  b.writeUInt32LE(prefix.length, 12);
  b.writeUInt32LE(s.env === false ? 0 : 1, 16);
  prefix.copy(b, 24);
  return b;
}
