/**
 * @module test/rebuild/project
 * The recorded C project of the rebuild tests and bench: `n` .c files sharing one header
 * (util.h), plus one file that does not include it, linked into `app` by a plain Makefile
 * (`cc -c x.c -o x.o` per file, then `cc -o app *.o`). Also the non-make pipeline: a shell
 * script that makes a file with `sort | uniq` and a python3 step.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Write the C project into dir; returns the names of its .c files (main.c first). */
export function writeCProject(dir: string, n = 3): string[] {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'util.h'), '#ifndef UTIL_H\n#define UTIL_H\nint twice(int x);\nint plain(int x);\n#define OFFSET 1\n#endif\n');
  const files = ['main.c', 'util.c', 'plain.c'];
  writeFileSync(join(dir, 'main.c'), '#include <stdio.h>\n#include "util.h"\nint main(void) { printf("%d\\n", twice(20) + plain(1) + OFFSET); return 0; }\n');
  writeFileSync(join(dir, 'util.c'), '#include "util.h"\nint twice(int x) { return 2 * x; }\n');
  // plain.c does not include util.h: a header change must not recompile it.
  writeFileSync(join(dir, 'plain.c'), 'int plain(int x) { return x; }\n');
  for (let i = 3; i < n; i++) {
    const name = `m${i}.c`;
    files.push(name);
    writeFileSync(join(dir, name), `#include "util.h"\nint f${i}(int x) { return twice(x) + ${i}; }\n`);
  }
  const objs = files.map((f) => f.replace(/\.c$/, '.o'));
  const rules = files.map((f) => `${f.replace(/\.c$/, '.o')}: ${f}${f === 'plain.c' ? '' : ' util.h'}\n\tcc -O1 -g -c ${f} -o ${f.replace(/\.c$/, '.o')}\n`).join('\n');
  writeFileSync(join(dir, 'Makefile'), `app: ${objs.join(' ')}\n\tcc -g -o app ${objs.join(' ')}\n\n${rules}`);
  return files;
}

/** The non-make pipeline: gen.sh makes uniq.txt (sort | uniq) and counts.txt (python3). */
export function writePipelineProject(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'words.txt'), 'pear\napple\npear\nfig\napple\n');
  writeFileSync(join(dir, 'count.py'),
    'import sys\nlines = open(sys.argv[1]).read().split()\nopen(sys.argv[2], "w").write("%d %s\\n" % (len(lines), ",".join(lines)))\n');
  writeFileSync(join(dir, 'gen.sh'), '#!/bin/sh\nset -e\nsort words.txt | uniq > uniq.txt\npython3 count.py uniq.txt counts.txt\n', { mode: 0o755 });
}
