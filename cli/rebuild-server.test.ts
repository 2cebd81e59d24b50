/**
 * @module cli/rebuild-server.test
 * The rebuild server's request decoding (the whole server runs in test/rebuild/server.test).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeRequest, refusalFor } from './rebuild-server.js';
import { InputError } from '../graph/errors.js';

const body = (...f: string[]): Buffer => Buffer.from(f.join('\0'));

describe('rebuild server requests', () => {
  it('decodes prov3 (the client runs the commands), prov2 (with the shortcut field) and prov1 (without) alike', () => {
    const v2 = decodeRequest(body('prov2', '/src', '011', '22', '1', '2', 'rebuild', 'app', '2', 'A=1', 'B=x=y'));
    assert.deepEqual(v2, { cwd: '/src', tty: { stdin: false, stdout: true, stderr: true }, umask: 0o22, shortcutDeclined: true, runsCommands: false, selfStarted: null, argv: ['rebuild', 'app'], env: { A: '1', B: 'x=y' } });
    const v3 = decodeRequest(body('prov3', '/src', '011', '22', '1', '2', 'rebuild', 'app', '2', 'A=1', 'B=x=y'));
    assert.deepEqual(v3, { ...v2, runsCommands: true });
    // prov4: the started field after the shortcut field (the token, then the runs the client started).
    const v4 = decodeRequest(body('prov4', '/src', '011', '22', '1', 'tok-1\nimg:a\nimg:b', '2', 'rebuild', 'app', '2', 'A=1', 'B=x=y'));
    assert.deepEqual(v4, { ...v2, runsCommands: true, selfStarted: { token: 'tok-1', runs: ['img:a', 'img:b'] } });
    assert.deepEqual(decodeRequest(body('prov4', '/src', '011', '22', '1', 'tok-2', '2', 'rebuild', 'app', '0')).selfStarted, { token: 'tok-2', runs: [] });
    assert.equal(decodeRequest(body('prov4', '/src', '011', '22', '1', '', '2', 'rebuild', 'app', '0')).selfStarted, null);
    const v1 = decodeRequest(body('prov1', '/src', '011', '22', '2', 'rebuild', 'app', '2', 'A=1', 'B=x=y'));
    assert.deepEqual(v1, { ...v2, shortcutDeclined: false });
    assert.equal(decodeRequest(body('prov2', '/', '000', '0', '0', '1', 'rebuild', '0')).shortcutDeclined, false);
  });

  it('says which field is wrong', () => {
    assert.throws(() => decodeRequest(body('prov9', '/')), (e: Error) => e instanceof InputError && /unknown request version "prov9"/.test(e.message));
    assert.throws(() => decodeRequest(body('prov4', '/', '000', '22', '0', 'tok\n\nx', '0', '0')), /bad started field/);
    assert.throws(() => decodeRequest(body('prov2', 'rel', '000', '22', '0', '0', '0')), /bad cwd or tty/);
    assert.throws(() => decodeRequest(body('prov2', '/', '000', '9', '0', '0', '0')), /bad umask/);
    assert.throws(() => decodeRequest(body('prov2', '/', '000', '22', 'x', '0', '0')), /bad shortcut field/);
    assert.throws(() => decodeRequest(body('prov2', '/', '000', '22', '0', '5', 'rebuild')), /bad argc/);
    assert.throws(() => decodeRequest(body('prov2', '/', '000', '22', '0', '1', 'rebuild', '3', 'A=1')), /bad envc/);
  });

  it('serves root and its own user only', () => {
    assert.equal(refusalFor({ uid: 0, pid: 1 }, 1000), null);
    assert.equal(refusalFor({ uid: 1000, pid: 1 }, 1000), null);
    assert.match(refusalFor({ uid: 1001, pid: 7 }, 1000) ?? '', /pid 7 runs as uid 1001: refused/);
    assert.match(refusalFor(null, 1000) ?? '', /SO_PEERCRED failed/);
  });
});
