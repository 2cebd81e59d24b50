import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OPS, type OpenEvent } from './events.js';
import { InputError } from '../graph/errors.js';
import { checkEvent, validateEvent } from './validate.js';
import { sampleEvent } from './journal/samples.js';

describe('validateEvent', () => {
  it('accepts a valid sample of every op', () => {
    for (const op of OPS) {
      const ev = sampleEvent(op, 7);
      assert.equal(validateEvent(ev, 'test'), ev, op);
      assert.deepEqual(checkEvent(ev), { ok: true, event: ev });
    }
  });

  it('names source, seq and the exact field', () => {
    const ev = { ...sampleEvent('exec', 811), argv: ['cc', '-c', 'x.c', 42] };
    assert.throws(() => validateEvent(ev, 'journal ebpf/x.seg offset 99'), (e: unknown) => {
      assert.ok(e instanceof InputError);
      assert.equal(e.message, 'journal ebpf/x.seg offset 99: ebpf seq 812: exec.argv[3] is not a string (got 42)');
      return true;
    });
  });

  it('explains each kind of rejection', () => {
    const base = sampleEvent('open', 0) as OpenEvent;
    const cases: Array<[unknown, RegExp]> = [
      [null, /record is not an object \(got null\)/],
      [[1, 2], /record is not an object \(got an array\)/],
      [{ ...base, v: 2 }, /^ebpf seq 1: v is 2, expected 1$/],
      [{ ...base, src: 'dtrace' }, /src "dtrace" is not a known source/],
      [{ ...base, op: 'frobnicate' }, /op "frobnicate" is not a known op/],
      [{ ...base, op: undefined }, /op is missing/],
      [{ ...base, pid: -1 }, /open\.pid is negative \(-1\)/],
      [{ ...base, pid: 1.5 }, /open\.pid is not an integer/],
      [{ ...base, pid: 2 ** 40 }, /open\.pid is out of range/],
      [{ ...base, ts: 1e300 }, /open\.ts is out of range/],
      [{ ...base, ts: NaN }, /open\.ts is not an integer \(got NaN\)/],
      [{ ...base, host: '' }, /open\.host is empty/],
      [{ ...base, file: { ...base.file, ino: '12' } }, /open\.file\.ino is not a number \(got "12"\)/],
      [{ ...base, file: undefined }, /open\.file is missing/],
      [{ ...base, flags: undefined }, /open\.flags is missing/],
      [{ ...sampleEvent('pipe', 0), fds: [3] }, /pipe\.fds has 1 elements, expected 2/],
      [{ ...sampleEvent('lost', 0), from: 30, to: 20 }, /lost\.to is before lost\.from/],
      [{ ...sampleEvent('sendmsg', 0), fds: [] }, /sendmsg\.files has 1 entries but sendmsg\.fds has 0/],
      [{ ...sampleEvent('close', 0), fd: 9, fdMax: 3 }, /close\.fdMax is below close\.fd/],
      [{ ...sampleEvent('fork', 0), thread: 'no' }, /fork\.thread is not a boolean/],
    ];
    for (const [x, re] of cases) {
      const c = checkEvent(x);
      assert.equal(c.ok, false, `accepted ${JSON.stringify(x)}`);
      if (!c.ok) assert.match(c.reason, re);
    }
  });

  it('accepts unknown extra fields and omitted optional ones', () => {
    const ev = { ...sampleEvent('exec', 1), future: { x: 1 } } as Record<string, unknown>;
    delete ev.env;
    delete ev.cwd;
    assert.equal(checkEvent(ev).ok, true);
  });
});
