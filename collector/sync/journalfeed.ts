/**
 * @module collector/sync/journalfeed
 * The journal as a {@link RecordFeed}: one checkpointed reader kept open across reads, so that
 * repeated syncs (and --watch) continue where the last read stopped instead of seeking again;
 * a read from another position reopens it. `heads` reads each stream's HEAD (last fsync'd seq);
 * `session` identifies the writer that has a stream open now.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { openJournalReader, type JournalReader } from '../journal/reader.js';
import type { JournalRecord, PayloadDecoder, RecordPrefilter } from '../journal/api.js';
import { HEAD_BYTES, HEAD_FILE, decodeHead } from '../journal/format.js';
import type { RecordFeed } from './feed.js';

const same = (a: Record<string, number>, b: Record<string, number>): boolean => {
  const ka = Object.keys(a).filter((k) => a[k]! > 0), kb = Object.keys(b).filter((k) => b[k]! > 0);
  return ka.length === kb.length && ka.every((k) => a[k] === b[k]);
};

export class JournalFeed implements RecordFeed {
  private reader: JournalReader | null = null;
  private prefilter: RecordPrefilter | undefined;

  constructor(readonly dir: string, readonly decoders?: ReadonlyMap<number, PayloadDecoder>) {}

  async *read(from: Record<string, number>, prefilter?: RecordPrefilter): AsyncIterable<JournalRecord> {
    if (!this.reader || this.prefilter !== prefilter || !same(this.reader.checkpoint(), from)) {
      this.reader?.close();
      this.reader = openJournalReader(this.dir, { from, decoders: this.decoders, prefilter });
      this.prefilter = prefilter;
    }
    yield* this.reader.records();
  }

  passedOver(): Record<string, number> {
    return this.reader?.passedOver() ?? {};
  }

  async heads(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    let names: string[] = [];
    try { names = fs.readdirSync(this.dir); } catch { return out; }
    for (const s of names) {
      try {
        const fd = fs.openSync(join(this.dir, s, HEAD_FILE), 'r');
        const b = Buffer.alloc(HEAD_BYTES);
        try { fs.readSync(fd, b, 0, HEAD_BYTES, 0); } finally { fs.closeSync(fd); }
        const h = decodeHead(b);
        if (typeof h !== 'string') out[s] = h.seq;
      } catch { /* not a stream */ }
    }
    return out;
  }

  /**
   * The writer's LOCK file (created O_EXCL when a writer opens the stream, removed when it
   * closes): its inode and mtime identify one writer session.
   */
  session(stream: string): string | null {
    try {
      const st = fs.statSync(join(this.dir, stream, 'LOCK'), { bigint: true });
      return `${st.ino}:${st.mtimeNs}`;
    } catch {
      return null;
    }
  }

  async close(): Promise<void> {
    this.reader?.close();
    this.reader = null;
  }
}
