/**
 * @module test/bench/workloads/apps
 * Application workloads in the spirit of Bento §5 (untar, grep -r, a C build, a git clone of
 * many small files): their inputs are generated once on ext4, then each run works inside one
 * target directory. Commands are spawned without a shell, asynchronously, so a collector that
 * runs in the benchmarking process (eBPF drain, journal writes) keeps running during the run.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Run a command to completion; resolves with its stdout, rejects with its stderr. */
export function runCmd(file: string, args: string[], cwd?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(file, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    c.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${file} ${args.join(' ')} failed (${code}): ${err.trim().slice(-400)}`))));
  });
}

export function runSync(file: string, args: string[], cwd?: string): string {
  const r = spawnSync(file, args, { cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} failed (${r.status}): ${(r.stderr ?? '').trim().slice(-400)}`);
  return r.stdout;
}

export interface AppInputs {
  /** A tarball of a source-like tree. */
  tarball: string;
  treeFiles: number;
  /** Files in the tree that contain the grep needle. */
  needles: number;
  /** A small C project (copied into the target before each build). */
  cproject: string;
  cfiles: number;
  /** A git repository of many small files (cloned with --no-local, so objects are packed and unpacked). */
  gitRepo: string;
  gitFiles: number;
}

/** Generate the inputs under `dir` (ext4). */
export function makeInputs(dir: string, quick: boolean): AppInputs {
  const treeFiles = quick ? 300 : 3000;
  const tree = join(dir, 'src-tree');
  let needles = 0;
  for (let i = 0; i < treeFiles; i++) {
    const d = join(tree, `mod${i % 30}`, `sub${i % 7}`);
    if (i < 210) mkdirSync(d, { recursive: true });
    const lines = 20 + ((i * 37) % 180);
    let body = '';
    for (let l = 0; l < lines; l++) body += `static int f${i}_${l}(int x) { return x * ${l} + ${i}; } /* line ${l} */\n`;
    if (i % 50 === 7) { body += '/* NEEDLE */\n'; needles++; }
    writeFileSync(join(d, `file${i}.c`), body);
  }
  const tarball = join(dir, 'tree.tar');
  runSync('tar', ['-cf', tarball, '-C', tree, '.']);

  const cfiles = quick ? 4 : 16;
  const cproject = join(dir, 'cproject');
  mkdirSync(cproject);
  for (let i = 0; i < cfiles; i++) {
    let body = '#include <stdio.h>\n#include <string.h>\n#include <stdlib.h>\n';
    for (let f = 0; f < 40; f++) body += `int u${i}_${f}(const char *s) { char b[64]; snprintf(b, sizeof b, "%s-${f}", s); return (int)strlen(b) * ${f + i}; }\n`;
    writeFileSync(join(cproject, `u${i}.c`), body);
  }
  writeFileSync(join(cproject, 'main.c'), 'int main(void) { return 0; }\n');
  writeFileSync(join(cproject, 'Makefile'), 'OBJS=$(patsubst %.c,%.o,$(wildcard *.c))\nprog: $(OBJS)\n\tcc -o $@ $^\n%.o: %.c\n\tcc -O1 -c $< -o $@\nclean:\n\trm -f *.o prog\n');

  const gitFiles = quick ? 300 : 2000;
  const gitRepo = join(dir, 'repo');
  mkdirSync(gitRepo);
  for (let i = 0; i < gitFiles; i++) {
    const d = join(gitRepo, `pkg${i % 40}`);
    if (i < 40) mkdirSync(d);
    writeFileSync(join(d, `m${i}.txt`), `module ${i}\n`.repeat(1 + (i % 60)));
  }
  const env = ['-c', 'user.name=bench', '-c', 'user.email=bench@localhost', '-c', 'init.defaultBranch=main', '-c', 'commit.gpgsign=false'];
  runSync('git', [...env, 'init', '-q'], gitRepo);
  runSync('git', [...env, 'add', '-A'], gitRepo);
  runSync('git', [...env, 'commit', '-q', '-m', 'bench tree'], gitRepo);
  return { tarball, treeFiles, needles, cproject, cfiles, gitRepo, gitFiles };
}
