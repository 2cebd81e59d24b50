/**
 * @module collector/journal/api
 * The journal's public shape. Layout on disk: `<dir>/<stream>/<segment files>`, one stream per
 * capture source instance (e.g. `ebpf`, `provfs-<id>`); each stream is append-only, framed,
 * checksummed and hash-chained, written by exactly one process. The writer assigns `seq`
 * (1, 2, … continuing after the last record on reopen) and overwrites `event.seq` with it.
 * Directories are 0700, files 0600 (the journal holds argv and environments).
 */
import type { ProvEvent } from '../events.js';

/**
 * Payload encodings. JSON is the default; binary codecs let hot sources skip JSON. `provfsRaw`
 * (collector/provfs-record) is decoded by every reader; `ebpfRaw` by readers given its decoder.
 */
export const CODEC = { json: 0, ebpfRaw: 1, provfsRaw: 2 } as const;

export interface JournalWriterOptions {
  dir: string;
  stream: string;
  /** Group-commit interval: appended records are fsync'd at most this long after append. Default 50. */
  fsyncIntervalMs?: number;
  /** Rotate to a new segment after this many bytes. Default 64 MiB. */
  segmentBytes?: number;
}

export interface JournalWriter {
  readonly stream: string;
  /** Seq of the last appended record (0 when empty). */
  readonly lastSeq: number;
  /** Append one event (JSON codec); returns its seq. Durable within fsyncIntervalMs. */
  append(event: ProvEvent): number;
  /** Append already-encoded payloads of one codec (hot path for binary sources); returns the last seq. */
  appendEncoded(codec: number, payloads: readonly Uint8Array[]): number;
  /** fsync everything appended so far. */
  flush(): Promise<void>;
  /** Flush and close. */
  close(): Promise<void>;
}

/** One record as read back. */
export interface JournalRecord {
  stream: string;
  seq: number;
  /** `<stream>:<seq>`: the position graph writes are keyed by. */
  pos: string;
  segment: string;
  offset: number;
  event: ProvEvent;
  /**
   * Records of this stream directly before this one that a reader's {@link RecordPrefilter}
   * passed over (whole, checksum-valid, not decoded): seqs `seq - skipped .. seq - 1`, none
   * missing between them and this one. Absent when none were (and always without a prefilter).
   */
  skipped?: number;
}

/**
 * Decides from a record's raw payload, before it is decoded, whether the consumer wants it
 * (true) or it may be passed over undecoded (false). Called once per whole, checksum-valid
 * record frame, in seq order per stream, ahead of delivery (readers read ahead): a stateful
 * prefilter may only ever change its mind towards keeping more.
 */
export type RecordPrefilter = (stream: string, codec: number, buf: Uint8Array, start: number, len: number) => boolean;

/** Turns a binary payload back into events (registered per codec by the source that writes it). */
export type PayloadDecoder = (payload: Uint8Array, where: string) => ProvEvent;
