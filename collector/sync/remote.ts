/**
 * @module collector/sync/remote
 * DST as `host:path` over ssh, with rsync as the transport.
 *
 * Namespace changes (renames, deletes) are run on the remote side by a fixed Perl program
 * (Perl is essential on Debian and on nearly every host that has rsync): the program text is a
 * constant, and every file name travels on its stdin as NUL-terminated data, so no file name is
 * ever interpolated into a shell command. It applies the same checks as safefs.ts (clean
 * components, no symlink among the parents) and the same staging order as apply.ts. Contents
 * then go with `rsync -a --files-from=- --from0` fed the exact list of changed paths (O(changes),
 * no tree walk; rsync writes each file to a temp and renames it). The full comparison is plain
 * `rsync -a [--delete]` over the whole tree.
 *
 * `rsh` (default ["ssh"]) is the remote-shell command, also given to rsync as --rsh; a test can
 * point it at a loopback wrapper that runs the "remote" side locally.
 */
import { spawn } from 'node:child_process';
import type { ApplyCounts, ApplyOptions } from './apply.js';
import { emptyCounts } from './apply.js';
import type { Plan } from './overlay.js';
import { InputError } from '../../graph/errors.js';
import { RESERVED_PREFIX, isReserved } from './paths.js';
import type { SafeTree } from './safefs.js';

export interface RemoteSpec { host: string; path: string }
export interface RemoteOptions {
  /** Remote-shell command and its arguments (default ["ssh"]). */
  rsh?: string[];
  /** rsync binary (default "rsync"). */
  rsync?: string;
}

/** `host:path` or `user@host:path` → spec; null for a local path (anything with "/" before ":"). */
export function parseRemote(dst: string): RemoteSpec | null {
  const m = /^([^/:]+):(.*)$/s.exec(dst);
  if (!m) return null;
  const host = m[1]!;
  if (host.startsWith('-') || /\s/.test(host)) throw new InputError(`bad host in ${JSON.stringify(dst)}`, 'DST');
  return { host, path: m[2] === '' ? '.' : m[2]! };
}

/** The remote program. No single quote may appear in it (it is sent inside '…'). */
const REMOTE_PL = `
use strict; use warnings; use File::Path qw(remove_tree);
local $/ = "\\0";
my @t = <STDIN>; chomp @t;
my $base = shift @t; my $stage = shift @t;
chdir $base or die "prov-sync: cannot enter $base: $!\\n";
sub comps { my @c = split m{/}, $_[0], -1;
  for (@c) { die "prov-sync: unsafe name in $_[0]\\n" if $_ eq "" || $_ eq "." || $_ eq ".." } @c }
sub parents_ok { my @c = comps($_[0]); my $p = ".";
  for my $i (0 .. $#c - 1) { $p .= "/$c[$i]"; return 0 unless lstat $p;
    die "prov-sync: $p is a symlink\\n" if -l _; return 0 unless -d _ } 1 }
sub make_parents { my @c = comps($_[0]); my $p = ".";
  for my $i (0 .. $#c - 1) { $p .= "/$c[$i]";
    if (!lstat $p) { mkdir $p, 0700 or die "prov-sync: mkdir $p: $!\\n" }
    elsif (-l _) { die "prov-sync: $p is a symlink\\n" }
    elsif (!-d _) { unlink $p or die "prov-sync: unlink $p: $!\\n"; mkdir $p, 0700 or die "prov-sync: mkdir $p: $!\\n" } } }
sub rmrf { my $p = "./$_[0]"; return 0 unless lstat $p;
  if (-d _) { remove_tree($p) } else { unlink $p or die "prov-sync: unlink $p: $!\\n" } 1 }
while (@t) {
  my $op = shift @t;
  if ($op eq "S") { my ($o, $slot) = splice @t, 0, 2;
    if (!lstat "./$stage") { mkdir "./$stage", 0700 or die "prov-sync: mkdir $stage: $!\\n" }
    if (parents_ok($o) && lstat "./$o") { rename "./$o", "./$stage/$slot" or die "prov-sync: rename $o: $!\\n" }
    else { print "M $slot\\n" } }
  elsif ($op eq "D") { my $o = shift @t; print "X\\n" if parents_ok($o) && rmrf($o) }
  elsif ($op eq "P") { my ($slot, $p) = splice @t, 0, 2;
    next unless lstat "./$stage/$slot";
    make_parents($p);
    if (!rename "./$stage/$slot", "./$p") { rmrf($p); rename "./$stage/$slot", "./$p" or die "prov-sync: rename to $p: $!\\n" }
    print "R\\n" }
  else { die "prov-sync: bad op\\n" } }
remove_tree("./$stage") if lstat "./$stage";
`;

function run(cmd: string, args: string[], input: Buffer): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? 1, out, err }));
    p.stdin.on('error', () => { /* the child exited early; its status says why */ });
    p.stdin.end(input);
  });
}

const nul = (xs: string[]): Buffer => Buffer.from(xs.map((x) => x + '\0').join(''));

export class RemoteTarget {
  readonly counts: ApplyCounts = emptyCounts();
  readonly actions: string[] = [];
  /**
   * Paths the plan placed that SRC no longer had (moved on while this sync ran): the object stays
   * staged and goes; the next sync copies them again where its records take them (as
   * Applier.vanished).
   */
  readonly vanished: string[] = [];
  private rsh: string[];
  private rsyncBin: string;

  constructor(readonly spec: RemoteSpec, readonly src: SafeTree, readonly opts: ApplyOptions, ro: RemoteOptions) {
    this.rsh = ro.rsh ?? ['ssh'];
    this.rsyncBin = ro.rsync ?? "rsync";
  }

  /** rsync's --rsh value: each word quoted for rsync's own splitting. */
  private rshArg(): string {
    return this.rsh.map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(' ');
  }

  private dest(): string { return `${this.spec.host}:${this.spec.path.replace(/\/?$/, '/')}`; }

  private async rsync(args: string[], list: string[] | null): Promise<void> {
    const a = ['-a', '--stats', `--rsh=${this.rshArg()}`, `--exclude=${RESERVED_PREFIX}*`, ...args];
    if (list) a.push('--from0', '--files-from=-');
    a.push(this.src.root + '/', this.dest());
    const r = await run(this.rsyncBin, a, nul(list ?? []));
    if (r.code !== 0 && r.code !== 24) throw new Error(`rsync to ${this.dest()} failed (${r.code}): ${r.err.trim().slice(0, 500)}`);
    const files = /Number of regular files transferred: ([\d,]+)/.exec(r.out);
    const bytes = /Total transferred file size: ([\d,]+)/.exec(r.out);
    if (files) this.counts.files += Number(files[1]!.replace(/,/g, ''));
    if (bytes) this.counts.bytes += Number(bytes[1]!.replace(/,/g, ''));
  }

  /** The whole tree with rsync's own comparison (the fallback). */
  async fullCompare(): Promise<void> {
    const args = [...(this.opts.delete ? ['--delete'] : []), ...(this.opts.checksum ? ['--checksum'] : [])];
    if (this.opts.dryRun) { this.actions.push(`rsync -a ${args.join(' ')} ${this.src.root}/ ${this.dest()}`); return; }
    await this.rsync(args, null);
  }

  /** Namespace ops remotely, then the changed paths through rsync. */
  async applyPlan(plan: Plan): Promise<void> {
    const ops: string[] = [];
    const flat = new Set<string>(['.']);
    const deep = new Set<string>();
    for (const op of plan.originOps) {
      if (op.op === 'stage') ops.push('S', op.origin, String(op.slot));
      else if (op.replaced || this.opts.delete) ops.push('D', op.origin);
    }
    const slotPath = new Map<number, string>();
    // Direct moves (see Overlay.plan) go through remote staging like the others: staged after
    // every other origin-side step (nothing of theirs is below them then), placed in order.
    let nextSlot = plan.originOps.reduce((m, op) => (op.op === 'stage' ? Math.max(m, op.slot + 1) : m), 0);
    const finalOps = plan.finalOps.map((op) => {
      if (op.op !== 'move') return op;
      const slot = nextSlot++;
      ops.push('S', op.origin, String(slot));
      return { op: 'place' as const, slot, origin: op.origin, path: op.path, dirty: op.dirty };
    });
    for (const op of finalOps) {
      if (op.op === 'place') {
        if (!this.src.lstat(op.path)) { this.vanished.push(op.path); continue; } // gone from SRC since: left staged, dropped
        ops.push('P', String(op.slot), op.path);
        slotPath.set(op.slot, op.path);
        flat.add(op.path);
      } else if (op.op === 'create' && op.subtree) deep.add(op.path);
      else flat.add(op.path);
    }
    for (const d of plan.metaDirs) flat.add(d === '' ? '.' : d);
    // Paths the records leave empty (Plan.clears), after every placement; a dry run cannot tell
    // whether DST holds anything there.
    if (this.opts.delete && !this.opts.dryRun) for (const p of plan.clears) ops.push('D', p);
    if (this.opts.dryRun) {
      for (let i = 0; i < ops.length;) {
        const op = ops[i]!;
        if (op === 'S') i += 3;
        else if (op === 'D') { this.actions.push(`delete ${ops[i + 1]}`); this.counts.deletes++; i += 2; }
        else { this.actions.push(`rename ${ops[i + 2]}`); this.counts.renames++; i += 3; }
      }
      for (const p of flat) this.actions.push(`rsync ${p}`);
      for (const p of deep) this.actions.push(`rsync -r ${p}`);
      return;
    }
    if (ops.length) {
      const stage = `${RESERVED_PREFIX}stage-${process.pid}-${Date.now()}`;
      const cmd = `perl -e '${REMOTE_PL}'`;
      const r = await run(this.rsh[0]!, [...this.rsh.slice(1), this.spec.host, cmd], nul([this.spec.path, stage, ...ops]));
      if (r.code !== 0) throw new Error(`remote renames/deletes on ${this.spec.host} failed (${r.code}): ${r.err.trim().slice(0, 500)}`);
      for (const line of r.out.split('\n')) {
        if (line === 'R') this.counts.renames++;
        else if (line === 'X') this.counts.deletes++;
        else if (line.startsWith('M ')) { const p = slotPath.get(Number(line.slice(2))); if (p) deep.add(p); }
      }
    }
    // A path SRC no longer has (moved on while this sync ran) would fail the whole rsync: it is
    // left to the next sync, which copies it where its records take it.
    const present = (p: string): boolean => {
      if (p === '.' || this.src.lstat(p)) return true;
      this.vanished.push(p);
      return false;
    };
    const list = [...flat].filter((p) => (p === '.' || !p.split('/').some(isReserved)) && present(p));
    await this.rsync([], list);
    const deepList = [...deep].filter(present);
    if (deepList.length) await this.rsync(['-r'], deepList);
  }
}
