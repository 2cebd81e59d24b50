import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseRebuild } from './fast-rebuild.js';

describe('prov rebuild fast path: takes only the plain forms, with commander\'s meaning', () => {
  it('parses global options, FILE, flags and --jobs', () => {
    assert.deepEqual(parseRebuild(['rebuild', 'app']), { config: {}, file: 'app', flags: {} });
    assert.deepEqual(parseRebuild(['--home', '/h', '--store', 'sqlite:/g.db', 'rebuild', '--dry-run', 'out/app', '-j', '3', '--json', '--cold', '--explain']), {
      config: { home: '/h', store: 'sqlite:/g.db' }, file: 'out/app', flags: { dryRun: true, json: true, cold: true, explain: true, jobs: 3 },
    });
    assert.deepEqual(parseRebuild(['rebuild', 'x', '--jobs', '0'])?.flags, { jobs: 0 });
  });

  it('leaves everything else to commander (help, errors, = forms, repeats, other commands)', () => {
    for (const args of [
      [], ['rebuild'], ['rebuild', '--help', 'x'], ['rebuild', 'x', '-h'], ['lineage', 'x'], ['--home=/h', 'rebuild', 'x'],
      ['--home', 'rebuild', 'x'], ['--home', '-x', 'rebuild', 'x'], ['--home', 'a', '--home', 'b', 'rebuild', 'x'],
      ['rebuild', 'x', 'y'], ['rebuild', 'x', '--bogus'], ['rebuild', 'x', '-j'], ['rebuild', 'x', '-j', '-1'], ['rebuild', 'x', '-j', '1.5'],
      ['rebuild', 'x', '-j2'], ['rebuild', 'x', '--json', '--json'], ['rebuild', 'x', '--jobs', '1', '-j', '2'], ['rebuild', '--', '-x'],
      ['--verbose', 'rebuild', 'x'], ['rebuild', 'x', '--home', '/h'],
    ]) assert.equal(parseRebuild(args), null, JSON.stringify(args));
  });
});
