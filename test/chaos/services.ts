import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../dev/embedded-postgres';
import { isAlive } from '../../dev/processes';
import { startTemporalDevServer, type TemporalDevServer } from '../../dev/temporal-dev-server';
import { killTree } from './processes';

/**
 * The stack's parts as separate OS processes the chaos suite can SIGKILL and start again: the API
 * and the workers (node, like `npm run api` / `npm run worker`), Postgres on its data directory and
 * the Temporal dev server on its SQLite file. Each keeps its log in a file of the run's directory.
 */

const ROOT = path.resolve(__dirname, '../..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Service {
  readonly name: string;
  /** Starts it and resolves once it serves. */
  start(): Promise<void>;
  /** SIGKILL (the process and anything it started), then wait until it is gone. */
  kill(): Promise<void>;
  /** Graceful stop at the end of the run. */
  stop(): Promise<void>;
  readonly running: boolean;
}

/** `node --require tsx/cjs <entry>`: node itself, so a SIGKILL reaches the process that does the work. */
export class NodeService implements Service {
  private child?: ChildProcess;
  private exited?: Promise<void>;
  private stopping = false;
  private tail = '';
  private readonly log: fs.WriteStream;
  /** Exits we did not cause (the supervisor starts the service again). */
  readonly unexpectedExits: string[] = [];

  constructor(
    readonly name: string,
    private readonly entry: string,
    private readonly env: Record<string, string>,
    logDir: string,
    /** Resolves true once the service serves. */
    private readonly ready: (tail: () => string) => Promise<boolean>,
    private readonly onUnexpectedExit?: (service: NodeService) => void,
  ) {
    this.log = fs.createWriteStream(path.join(logDir, `${name}.log`), { flags: 'a' });
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  private starting?: Promise<void>;

  /** One start at a time: a supervisor and a scheduled restart may ask together. */
  start(): Promise<void> {
    this.starting ??= this.spawnAndWait().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async spawnAndWait(): Promise<void> {
    this.stopping = false;
    this.tail = '';
    this.log.write(`\n===== ${new Date().toISOString()} starting ${this.name}\n`);
    const child = spawn(process.execPath, ['--require', 'tsx/cjs', path.join(ROOT, this.entry)], {
      cwd: ROOT,
      env: { ...process.env, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    const onData = (d: Buffer) => {
      this.log.write(d);
      this.tail = (this.tail + d.toString()).slice(-64_000);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.log.write(`\n===== ${new Date().toISOString()} ${this.name} exited (${signal ?? code})\n`);
        if (!this.stopping && this.child === child) {
          this.unexpectedExits.push(`${new Date().toISOString()} ${signal ?? `exit ${code}`}`);
          this.onUnexpectedExit?.(this);
        }
        resolve();
      }),
    );
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`${this.name} exited during start-up:\n${this.tail.slice(-4000)}`);
      if (await this.ready(() => this.tail).catch(() => false)) return;
      if (Date.now() > deadline) throw new Error(`${this.name} did not become ready within 120 s:\n${this.tail.slice(-4000)}`);
      await sleep(100);
    }
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (!child?.pid || !this.running) return;
    this.stopping = true;
    killTree(child.pid);
    await this.exited;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    this.stopping = true;
    child.kill('SIGTERM');
    const done = await Promise.race([this.exited!.then(() => true), sleep(20_000).then(() => false)]);
    if (!done) await this.kill();
  }

  close(): void {
    this.log.end();
  }
}

/** The embedded Postgres on one data directory and port, killed with SIGKILL and started on the same files. */
export class PostgresService implements Service {
  readonly name = 'postgres';
  private pg?: EmbeddedPostgres;

  constructor(
    private readonly dataDir: string,
    readonly port: number,
  ) {}

  get running(): boolean {
    return this.pg !== undefined && isAlive(this.pg.pid);
  }

  get url(): string {
    return `postgres://postgres:postgres@127.0.0.1:${this.port}/conduit`;
  }

  async start(): Promise<void> {
    // After a SIGKILL the server's last backends may still hold its shared memory for a moment.
    for (let attempt = 1; ; attempt++) {
      try {
        // Durable, as in production: `fast` turns synchronous_commit off, and a SIGKILL would then
        // lose commits the clients were told had succeeded (a saved token pair, for one).
        this.pg = await startEmbeddedPostgres({ dataDir: this.dataDir, port: this.port, database: 'conduit' });
        return;
      } catch (err) {
        if (attempt >= 20) throw err;
        await sleep(500);
      }
    }
  }

  async kill(): Promise<void> {
    if (!this.pg || !this.running) return;
    killTree(this.pg.pid);
    await this.pg.exited;
  }

  async stop(): Promise<void> {
    await this.pg?.stop();
  }
}

/** The Temporal dev server on one SQLite file and port, killed with SIGKILL and started on the same file. */
export class TemporalService implements Service {
  readonly name = 'temporal';
  private server?: TemporalDevServer;
  private alive = false;

  constructor(
    private readonly dbFilename: string,
    readonly port: number,
  ) {}

  get running(): boolean {
    return this.alive;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = await startTemporalDevServer({ dbFilename: this.dbFilename, port: this.port, uiPort: false, logLevel: 'error' });
    this.alive = true;
    void this.server.exited.then(() => (this.alive = false));
  }

  async kill(): Promise<void> {
    if (!this.server || !this.alive) return;
    killTree(this.server.pid);
    await this.server.exited;
  }

  async stop(): Promise<void> {
    await this.server?.stop();
  }
}
