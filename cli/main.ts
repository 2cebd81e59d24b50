#!/usr/bin/env node
/**
 * @module cli/main
 * The `prov` command: one file of subcommands. Actions are thin and imported lazily, so
 * `prov --help` loads nothing heavy. Every error ends as one line and a documented exit code
 * (graph/errors.ts EXIT): 0 ok, 1 failure, 2 bad input, 3 not found, 4 missing capability,
 * 5 integrity failure, 6 store unreachable.
 */
import type { Command } from 'commander';
import { exitCodeOf, ProvError } from '../graph/errors.js';
import { join } from 'node:path';
import { resolveConfig, type ConfigFlags } from './config.js';
import { fastRebuild } from './fast-rebuild.js';

// A plain `prov rebuild FILE …` runs without loading commander (cli/fast-rebuild). Output to
// files, pipes and terminals is synchronous on Linux, so exiting here loses nothing.
const fast = await fastRebuild(process.argv);
if (fast !== null) process.exit(fast);
const commander = await import('commander');
const { CommanderError, InvalidArgumentError, Option } = commander;

type Action = () => Promise<number>;

/** Run an action, turning any error into one line on stderr and an exit code. */
async function run(action: Action): Promise<void> {
  try {
    process.exitCode = await action();
  } catch (err) {
    const msg = err instanceof ProvError || err instanceof Error ? err.message : String(err);
    process.stderr.write(`prov: ${msg}\n`);
    if (process.env.PROV_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    process.exitCode = exitCodeOf(err);
  }
}

function int(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a whole number ≥ 0`);
    return n;
  };
}

const program = new commander.Command('prov')
  .description('provenance tracking and forensics for Linux')
  .option('--home <dir>', 'state directory (string; default $PROV_HOME or /var/lib/prov)')
  .option('--journal <dir>', 'journal directory (string; default <home>/journal)')
  .option('--store <url>', 'graph store URL: sqlite:PATH or bolt://host:port (string; default sqlite:<home>/graph.db)')
  .showHelpAfterError()
  .exitOverride();

const cfg = (): ReturnType<typeof resolveConfig> => resolveConfig(program.opts<ConfigFlags>());

const lineageOptions = (cmd: Command): Command =>
  cmd
    .option('--up', 'ancestors: what it came from (default)')
    .option('--down', 'descendants: what came out of it')
    .option('--depth <n>', 'edges to walk (integer; default 10)', int('--depth'), 10)
    .option('--since <time>', 'only relations at or after (ISO date, 10m/2h/1d ago, ns:<n>; default none)')
    .option('--until <time>', 'only relations at or before (same forms; default none)')
    .addOption(new Option('--rule <rule>', 'derivation rule (default history)').choices(['history', 'strict']).default('history'))
    .option('--limit <n>', 'most nodes returned (integer; default 5000)', int('--limit'), 5000);

lineageOptions(
  program
    .command('lineage <target>')
    .description('where a file came from (--up) or what came out of it (--down); target is a path or node id'),
)
  .option('--json', 'print the subgraph as JSON')
  .action((target: string, opts) =>
    run(async () => (await import('./actions/lineage.js')).default(cfg(), target, opts)),
  );

lineageOptions(program.command('export <target>').description('export lineage as W3C PROV-JSON, Graphviz DOT or SVG'))
  .addOption(new Option('--format <format>', 'output format (default prov-json)').choices(['prov-json', 'dot', 'svg']).default('prov-json'))
  .option('-o, --output <file>', 'write to a file instead of stdout (string; default stdout)')
  .action((target: string, opts) =>
    run(async () => (await import('./actions/export.js')).default(cfg(), target, opts)),
  );

program
  .command('ingest')
  .description('run the collector: journal → join → graph store')
  .option('--follow', 'keep following the journal until interrupted')
  .option('--strict', 'also record the Bento-prov strict rule (files open for reading when a file is written)')
  .option('--json', 'print the summary as JSON')
  .action((opts) => run(async () => (await import('./actions/ingest.js')).default(cfg(), opts)));

program
  .command('verify [journal]')
  .description('check the journal\'s hash chain; exit 0 clean, 5 modified/missing/reordered (journal: string; default <home>/journal)')
  .option('--anchor <file>', 'an earlier `prov verify --json` report kept elsewhere: also catches a cut-off tail (string; default none)')
  .option('--json', 'print the full report as JSON')
  .action((journal: string | undefined, opts) =>
    run(async () => (await import('./actions/verify.js')).default(journal ?? cfg().journal, opts)),
  );

program
  .command('capture <action>')
  .description('eBPF capture: start (attach and leave a collector draining into the journal), stop, status')
  .option('--pid <pid...>', 'only these pids and their descendants (integers; default every process)')
  .option('--cgroup <id>', 'only this cgroup v2 id (integer; default any)')
  .option('--prefix <path>', 'file events only under this absolute path (string; default /)')
  .option('--ring-mib <n>', 'ring buffer size in MiB, a power of two; allocated whole at attach and unswappable (integer; default 1/64 of RAM, 16–256)')
  .option('--ring-mb <n>', 'same as --ring-mib (older spelling)')
  .option('--nice <n>', 'nice of the collector while its ring is calm, -20..19; 19 leaves the CPU to the workloads watched and drains on idle time, a quarter-full ring still raises it to -10 (integer; default 0)')
  .option('--no-env', 'do not record environments at exec')
  .option('--json', 'print as JSON')
  .action((action: string, opts) =>
    run(async () => {
      if (!['start', 'stop', 'status'].includes(action)) {
        const { InputError } = await import('../graph/errors.js');
        throw new InputError(`unknown action "${action}" (start, stop or status)`, 'prov capture');
      }
      return (await import('./actions/capture.js')).default(action as 'start' | 'stop' | 'status', { ...opts, journal: cfg().journal });
    }),
  );

program
  .command('serve')
  .description('the lineage explorer (web UI) over the graph store')
  .option('--host <addr>', 'address to bind (string; default 127.0.0.1; any other needs a token)', '127.0.0.1')
  .option('--port <n>', 'port (integer; default 7777; 0 picks a free one)', int('--port'), 7777)
  .option('--token-file <file>', 'file holding the API token (string; default $PROV_TOKEN); never pass a token in argv')
  .action((opts) =>
    run(async () => {
      const { readFileSync } = await import('node:fs');
      const token = opts.tokenFile ? readFileSync(opts.tokenFile, 'utf8').trim() : process.env.PROV_TOKEN;
      const url = cfg().store;
      const store = url.startsWith('sqlite:') ? url.slice('sqlite:'.length) : await (await import('../graph/open.js')).openStore(url);
      return (await import('./actions/serve.js')).default({ store, host: opts.host, port: opts.port, token });
    }),
  );

program
  .command('rebuild <file>')
  .description('re-run only the stale recorded commands that produced a file (transparent make), under capture')
  .option('--dry-run', 'print the plan, run nothing')
  .option('--explain', 'say why each command runs or not')
  .option('-j, --jobs <n>', 'commands run in parallel (integer; default the number of CPUs; 0 = that default)', int('--jobs'))
  .option('--json', 'print the plan, decisions, hazards and results as JSON (secrets redacted)')
  .option('--cold', 'attach capture for this run only; by default the first rebuild leaves an idle pid-tree attach that later ones reuse (prov capture stop or prov down detaches it)')
  .action((file: string, opts) => run(async () => (await import('./actions/rebuild.js')).default(cfg(), file, opts)));

program
  .command('rebuild-server')
  .description('a resident `prov rebuild` (modules, capture and plans kept warm) for the native client dist/cli/prov; listens on <runtime>/rebuild/server.sock (runtime: $PROV_RUNTIME_DIR or /run/prov/provfs), foreground')
  .option('--idle-minutes <n>', 'exit after this many minutes without a request (integer; default 30; 0 = never)', int('--idle-minutes'), 30)
  .action((opts) =>
    run(async () => {
      const { runRebuildServer } = await import('./rebuild-server.js');
      const code = await runRebuildServer({
        idleMinutes: opts.idleMinutes,
        onListening: (sock) => process.stderr.write(`prov rebuild-server: pid ${process.pid} listening on ${sock}\n`),
      });
      // Stopped: whatever a request left loaded (koffi, the warm capture's handles) must not keep it alive.
      process.exit(code);
    }),
  );

program
  .command('mount <backing> <mountpoint>')
  .description('mount provfs over BACKING at MOUNTPOINT (they may be the same directory)')
  .addOption(new Option('--mode <mode>', 'plain (no logging) or prov (log to the journal) (default plain)').choices(['plain', 'prov']).default('plain'))
  .option('--no-passthrough', 'serve data I/O in the daemon instead of kernel passthrough')
  .option('--no-keeper', 'no fd keeper (a crashed daemon then leaves a stale mount)')
  .option('--json', 'print as JSON')
  .action((backing: string, mountpoint: string, opts) =>
    run(async () => (await import('./actions/mount.js')).mountCommand(backing, mountpoint, { ...opts, journal: cfg().journal })),
  );

program
  .command('umount <mountpoint>')
  .description('unmount provfs and stop its daemon; also clears a stale mount left by a crash')
  .option('--lazy', 'detach a busy mount (it goes away when the last user leaves)')
  .option('--json', 'print as JSON')
  .action((mountpoint: string, opts) => run(async () => (await import('./actions/mount.js')).umountCommand(mountpoint, opts)));

program
  .command('upgrade <mountpoint>')
  .description('replace a running provfs daemon live: switch mode, or move to a new build with --to')
  .addOption(new Option('--mode <mode>', 'mode after the upgrade (default prov)').choices(['plain', 'prov']).default('prov'))
  .option('--to <path>', 'provfsd.js of another build (version N → N+1) (string; default this build)')
  .option('--json', 'print as JSON')
  .action((mountpoint: string, opts) =>
    run(async () => (await import('./actions/mount.js')).upgradeCommand(mountpoint, { ...opts, journal: cfg().journal })),
  );

program
  .command('up')
  .description('put this host into provenance mode: eBPF probes, provfs mounts in prov mode, collector; restarts nothing')
  .option('--json', 'print as JSON')
  .action((opts) => run(async () => (await import('./actions/up.js')).up(cfg(), opts)));

program
  .command('down')
  .description('take this host out of provenance mode (the reverse of up; nothing recorded is lost)')
  .option('--json', 'print as JSON')
  .action((opts) => run(async () => (await import('./actions/up.js')).down(cfg(), opts)));

program
  .command('sync <src> <dst>')
  .description('make DST equal SRC using what the journal recorded since the last sync (DST may be host:path over ssh)')
  .option('--watch', 'keep syncing as changes are recorded')
  .option('--dry-run', 'print the plan, change nothing')
  .option('--delete', 'delete in DST what was deleted in SRC')
  .option('--checksum', 'compare contents by hash when a full comparison is needed')
  .option('--json', 'print the summary as JSON')
  .action((src: string, dst: string, opts) =>
    run(async () => (await import('./actions/sync.js')).default(src, dst, { ...opts, journal: cfg().journal, state: join(cfg().home, 'sync') })),
  );

program
  .command('hosts')
  .description('the hosts whose provenance the store holds')
  .option('--json', 'print as JSON')
  .action((opts) =>
    run(async () => {
      const store = await (await import('../graph/open.js')).openStore(cfg().store);
      try {
        return await (await import('./actions/hosts.js')).default(store, opts);
      } finally {
        await store.close();
      }
    }),
  );

program
  .command('stats')
  .description('what the graph store holds')
  .option('--json', 'print as JSON')
  .action((opts) => run(async () => (await import('./actions/stats.js')).default(cfg(), opts)));

program.parseAsync(process.argv).catch((err) => {
  // Commander has already printed its message (bad flag, missing argument) or the help.
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? 0 : 2;
    return;
  }
  process.stderr.write(`prov: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = exitCodeOf(err);
});
