/**
 * @module web/server/errors
 * The one place API errors become HTTP answers: named prov errors map through
 * graph/errors' httpStatusOf, the body says what and where, and nothing unexpected leaks a
 * stack trace to the client (it goes to the log instead).
 */
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express';
import { NotFoundError, ProvError, httpStatusOf } from '../../graph/errors.js';
import { logger } from '../../collector/log.js';

const log = logger('web');

/** The JSON body of every error answer. */
export interface ErrorBody {
  error: string;
  message: string;
  where?: string;
}

/** A 401: the request lacks the token (kept apart from ProvError: it is not bad input). */
export class UnauthorizedError extends Error {
  constructor(message: string) { super(message); this.name = 'UnauthorizedError'; }
}

/** Status and body for any thrown value. */
export function errorAnswer(err: unknown): { status: number; body: ErrorBody } {
  if (err instanceof UnauthorizedError) return { status: 401, body: { error: 'EAUTH', message: err.message } };
  // Express's own parsers (e.g. a malformed URI) throw errors with a 4xx `status`.
  const own = (err as { status?: unknown; expose?: unknown })?.status;
  if (!(err instanceof ProvError) && typeof own === 'number' && own >= 400 && own < 500) {
    return { status: 400, body: { error: 'EINPUT', message: String((err as Error).message) } };
  }
  const status = httpStatusOf(err);
  if (err instanceof ProvError) {
    const body: ErrorBody = { error: err.code, message: err.message };
    if (err.where !== undefined) body.where = err.where;
    return { status, body };
  }
  log.error(`unexpected error: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  return { status: 500, body: { error: 'EINTERNAL', message: 'internal error (see the server log)' } };
}

/** Express error middleware: the last `app.use`. */
export const errorHandler: ErrorRequestHandler = (err, _req, res, next) => {
  if (res.headersSent) { next(err); return; }
  const { status, body } = errorAnswer(err);
  res.status(status).json(body);
};

/** Wrap an async handler so a rejected promise reaches the error middleware (Express 4 does not). */
export function handle(fn: (req: Request, res: Response) => Promise<void>): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => { fn(req, res).catch(next); };
}

/** The 404 for an API path that does not exist. */
export const unknownRoute: RequestHandler = (req, _res, next) => {
  next(new NotFoundError(`no such API endpoint: ${req.method} ${req.path}`));
};
