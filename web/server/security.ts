/**
 * @module web/server/security
 * What keeps the explorer private: the bind rule (loopback unless a token is set), the token
 * check on every API request, the Host check against DNS rebinding, and the response headers
 * (a Content-Security-Policy that allows no inline script).
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { RequestHandler } from 'express';
import { InputError } from '../../graph/errors.js';
import { UnauthorizedError } from './errors.js';

/** The CSP of every answer: only our own scripts, styles and API; no inline script, no framing. */
export const CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
  "font-src 'self'", "connect-src 'self'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ');

/** True for an address only this machine can reach. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1' || host === '[::1]';
}

/** Refuse to listen beyond loopback without a token (the data names every file and command on the host). */
export function checkBind(host: string, token: string | undefined): void {
  if (isLoopback(host)) return;
  if (!token) throw new InputError(`binding ${host} exposes the lineage beyond this machine: give a token (--token or PROV_TOKEN)`, 'host');
  if (token.length < 16) throw new InputError('must be at least 16 characters when binding beyond loopback', 'token');
}

/** Security headers for every answer. */
export const securityHeaders: RequestHandler = (_req, res, next) => {
  res.setHeader('Content-Security-Policy', CSP);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  next();
};

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * Token check for the API: `Authorization: Bearer <token>` on every request. Without a token
 * (loopback only), the Host header must name loopback so a rebound DNS name cannot read the API.
 */
export function requireToken(token: string | undefined): RequestHandler {
  const want = token ? digest(token) : undefined;
  return (req, _res, next) => {
    if (!want) {
      const host = (req.headers.host ?? '').replace(/:\d+$/, '');
      if (!isLoopback(host)) { next(new UnauthorizedError(`Host ${JSON.stringify(host.slice(0, 80))} is not loopback; this server has no token`)); return; }
      next();
      return;
    }
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (!m) { next(new UnauthorizedError('missing token: send "Authorization: Bearer <token>"')); return; }
    if (!timingSafeEqual(digest(m[1]!), want)) { next(new UnauthorizedError('wrong token')); return; }
    next();
  };
}
