/**
 * @module graph/errors
 * The few named error classes prov uses everywhere. They carry data, not prose only, and are
 * mapped to CLI exit codes and HTTP statuses in one place ({@link exitCodeOf}, {@link httpStatusOf}).
 * They live in graph/ because it is the lowest room: every other room may import it.
 */

/** Base class: `code` is stable and machine-readable; `where` says where bad input was. */
export class ProvError extends Error {
  constructor(message: string, readonly code: string, readonly where?: string) {
    super(where ? `${where}: ${message}` : message);
    this.name = new.target.name;
  }
}
/** Bad input from a user or a file: a wrong argument, a malformed record. */
export class InputError extends ProvError {
  constructor(message: string, where?: string) { super(message, 'EINPUT', where); }
}
/** A path, node or journal that does not exist. */
export class NotFoundError extends ProvError {
  constructor(message: string, where?: string) { super(message, 'ENOTFOUND', where); }
}
/** The host lacks something prov needs (FUSE, BTF, CAP_BPF, a package). */
export class CapabilityError extends ProvError {
  constructor(message: string, readonly missing: string) { super(message, 'ECAPABILITY'); }
}
/** A journal or state that fails its integrity check. */
export class IntegrityError extends ProvError {
  constructor(message: string, where?: string) { super(message, 'EINTEGRITY', where); }
}
/** The graph store is unreachable or refused a write. */
export class StoreError extends ProvError {
  constructor(message: string, where?: string) { super(message, 'ESTORE', where); }
}

/** CLI exit codes (documented in README). 1 is any other failure. */
export const EXIT = { ok: 0, failure: 1, input: 2, notFound: 3, capability: 4, integrity: 5, store: 6 } as const;

export function exitCodeOf(err: unknown): number {
  if (err instanceof InputError) return EXIT.input;
  if (err instanceof NotFoundError) return EXIT.notFound;
  if (err instanceof CapabilityError) return EXIT.capability;
  if (err instanceof IntegrityError) return EXIT.integrity;
  if (err instanceof StoreError) return EXIT.store;
  return EXIT.failure;
}

export function httpStatusOf(err: unknown): number {
  if (err instanceof InputError) return 400;
  if (err instanceof NotFoundError) return 404;
  if (err instanceof IntegrityError) return 409;
  if (err instanceof CapabilityError || err instanceof StoreError) return 503;
  return 500;
}
