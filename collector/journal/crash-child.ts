/**
 * @module collector/journal/crash-child
 * A writer process for the crash test (crash.test.ts): appends JSON and binary records in a
 * loop and prints `durable <seq>` each time a group commit finishes, until it is killed.
 * Usage: node crash-child.js <journal dir>
 */
import { CODEC } from './api.js';
import { openJournalWriter } from './writer.js';
import { anySampleEvent } from './samples.js';

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: crash-child.js <journal dir>\n');
  process.exit(2);
}
const w = openJournalWriter({ dir, stream: 'crash', fsyncIntervalMs: 5, segmentBytes: 256 * 1024 });
let i = w.lastSeq;
let reported = w.durableSeq;
const payload = Buffer.alloc(100, 7);
for (;;) {
  for (let k = 0; k < 200; k++) w.append(anySampleEvent(i++));
  w.appendEncoded(CODEC.ebpfRaw, [payload, payload, payload]);
  i += 3;
  if (i % 2000 < 203) await w.flush();
  else await new Promise((r) => setImmediate(r));
  if (w.durableSeq !== reported) {
    reported = w.durableSeq;
    process.stdout.write(`durable ${reported}\n`);
  }
}
