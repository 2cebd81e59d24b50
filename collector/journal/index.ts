/**
 * @module collector/journal
 * The journal's entry points in one place: the writer, the checkpointed reader, the verifier,
 * and the contract types from api.ts.
 */
export * from './api.js';
export { openJournalWriter, type JournalWriterHandle, type RecoveryInfo } from './writer.js';
export {
  openJournalReader, type JournalReader, type JournalReaderOptions, type ReadOptions, type ReaderStats,
  type RejectedRecord,
} from './reader.js';
export {
  verifyJournal, type VerifyReport, type VerifyProblem, type StreamReport, type ProblemKind, type Anchor, type VerifyOptions,
} from './verify.js';
