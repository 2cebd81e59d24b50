/**
 * @module collector/sync/feed
 * Where sync reads records from. {@link RecordFeed} is the small slice of the journal reader
 * sync needs: "every record after this checkpoint, up to the end as it is now". The journal
 * adapter lives in journalfeed.ts; {@link MemoryFeed} holds records in memory (the unit tests
 * fill it from a workload that emits the events a capture source would write).
 */
import { hostname } from 'node:os';
import type { JournalRecord, RecordPrefilter } from '../journal/api.js';
import type { ProvEvent } from '../events.js';

export interface RecordFeed {
  /**
   * Records after `from` (last applied seq per stream), in order within each stream. With a
   * prefilter, records it turns down may be passed over undecoded (a record then says how many
   * were passed over right before it, `skipped`); a feed may also ignore it and deliver all.
   */
  read(from: Record<string, number>, prefilter?: RecordPrefilter): AsyncIterable<JournalRecord>;
  /**
   * After a read whose records were all taken: streams that end in passed-over records, and
   * the seq they reach (contiguous with the last record delivered).
   */
  passedOver?(): Record<string, number>;
  /** Last seq of every stream now (to notice a journal that was replaced or cut short). */
  heads?(): Promise<Record<string, number>>;
  /**
   * An id of the writer session of `stream` now (null when no writer has it open). A capture
   * source that stopped and started again has a new session: the events between are unknown.
   */
  session?(stream: string): string | null;
  /** Release what the feed holds open. */
  close?(): Promise<void>;
}

/** Records kept in memory, one stream. */
export class MemoryFeed implements RecordFeed {
  readonly records: JournalRecord[] = [];
  constructor(readonly stream = 'test') {}

  /** Append an event as the journal writer would (assigns seq and position). */
  append(event: ProvEvent): number {
    const seq = this.records.length + 1;
    this.records.push({ stream: this.stream, seq, pos: `${this.stream}:${seq}`, segment: 'memory', offset: seq, event: { ...event, seq } });
    return seq;
  }

  /** Append a `lost` record (what a source writes after dropping events). */
  lose(count: number, reason: string): void {
    const now = Number(process.hrtime.bigint());
    this.append({ v: 1, src: 'ebpf', seq: 0, ts: now, host: hostname(), pid: 0, tid: 0, op: 'lost', count, from: now - 1000, to: now, reason });
  }

  async heads(): Promise<Record<string, number>> {
    return { [this.stream]: this.records.length };
  }

  async *read(from: Record<string, number>): AsyncIterable<JournalRecord> {
    const after = from[this.stream] ?? 0;
    for (const r of this.records) if (r.seq > after) yield r;
  }
}
