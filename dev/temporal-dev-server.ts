import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import {
  encodeSearchAttributeIndexedValueType,
  type SearchAttributeKey,
  type SearchAttributeType,
} from '@temporalio/common/lib/search-attributes';
import { SEARCH_ATTRIBUTE_KEYS } from '../src/temporal/search-attributes';
import { getFreePort } from './ports';
import { resolveTemporalCli } from './temporal-cli';
import { isAlive, settlesWithin } from './processes';

/**
 * Runs `temporal server start-dev` (the official CLI's single-process server, SQLite-backed) as a
 * child process, for `npm start` and the test suite's global setup.
 *
 * We spawn it ourselves instead of using `@temporalio/testing`'s `createLocal`, because that gives up
 * after 5 s of start-up and can't keep the server running across our own process' lifecycle steps.
 */
export interface TemporalDevServerOptions {
  /** SQLite file for persistent state (parent folders are created). Omit for in-memory. */
  dbFilename?: string;
  /** Frontend gRPC port. Default: a free port. */
  port?: number;
  /** Web UI port, or `false` for `--headless`. Default: a free port. */
  uiPort?: number | false;
  /** Namespace to create and wait for (`default` always exists). Default `default`. */
  namespace?: string;
  /** Address the frontend (and UI) bind to. Default `127.0.0.1`. */
  ip?: string;
  /** Server log level: debug | info | warn | error | never. The CLI's default for the server is `warn`. */
  logLevel?: string;

  /** Path of the `temporal` binary. Default: {@link resolveTemporalCli}. */
  cliPath?: string;
  /**
   * SQLite pragmas. With a `dbFilename` the default is `journal_mode=WAL, synchronous=NORMAL`: WAL lets
   * readers and the writer overlap, and NORMAL is still crash-safe in WAL mode (a power cut may lose the
   * last commits, never corrupt the file). Throwaway test servers pass `synchronous: 'OFF'`, as the
   * SDK's own CI does. In-memory servers get no pragmas.
   */
  sqlitePragmas?: Record<string, string>;
  /** Extra `--dynamic-config-value` entries (values are JSON-encoded). */
  dynamicConfig?: Record<string, unknown>;
  /** Search attributes to register (and to ensure exist on a persisted DB). Default: Conduit's. */
  searchAttributes?: readonly SearchAttributeKey<SearchAttributeType>[];
  /**
   * Run the server in its own process group, so a terminal Ctrl-C reaches only our process and we can
   * shut down in order (API, worker, then Temporal). We still stop it on exit. Default false.
   */
  detached?: boolean;
  /** How long to wait for the frontend to answer. Default 60 s. */
  startupTimeoutMs?: number;
  /** Receives each line the server prints. By default output is only kept for error messages. */
  onOutput?: (line: string) => void;
  /** Appended to the command line. */
  extraArgs?: string[];
}

export interface TemporalDevServer {
  /** `host:port` of the frontend, for `TEMPORAL_ADDRESS`. */
  address: string;
  namespace: string;
  uiUrl?: string;
  pid: number;
  /** Settles when the process exits, whichever the reason. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last lines the server printed (for diagnostics). */
  outputTail(): string;
  /** SIGTERM, then SIGKILL if it is still running after `timeoutMs` (default 10 s). Idempotent. */
  stop(timeoutMs?: number): Promise<void>;
}

/**
 * Dynamic config we set explicitly. Server 1.32 (CLI 1.9.1) already enables both by default
 * (checked: an update against an unknown workflow answers "workflow not found", not "disabled"),
 * but a `TEMPORAL_CLI_PATH` pointing at an older CLI would not.
 */
const DEFAULT_DYNAMIC_CONFIG: Record<string, unknown> = {
  'frontend.enableUpdateWorkflowExecution': true, // workflow updates ("sync now", "replace credentials")
  'frontend.enableExecuteMultiOperation': true, // update-with-start
};

/** `SearchAttributeType` → the type names `--search-attribute Name=Type` and the `temporal` CLI use. */
export function searchAttributeTypeName(type: SearchAttributeType): string {
  const names: Record<SearchAttributeType, string> = {
    TEXT: 'Text',
    KEYWORD: 'Keyword',
    INT: 'Int',
    DOUBLE: 'Double',
    BOOL: 'Bool',
    DATETIME: 'Datetime',
    KEYWORD_LIST: 'KeywordList',
  };
  return names[type];
}

export async function startTemporalDevServer(opts: TemporalDevServerOptions = {}): Promise<TemporalDevServer> {
  const ip = opts.ip ?? '127.0.0.1';
  const namespace = opts.namespace ?? 'default';
  const port = opts.port ?? (await getFreePort(ip));
  const uiPort = opts.uiPort === false ? false : (opts.uiPort ?? (await getFreePort(ip)));
  const searchAttributes = opts.searchAttributes ?? SEARCH_ATTRIBUTE_KEYS;
  const cli = opts.cliPath ?? (await resolveTemporalCli());
  const dbFilename = opts.dbFilename ? path.resolve(opts.dbFilename) : undefined;
  const pidFile = dbFilename ? `${dbFilename}.pid` : undefined;

  const args = ['server', 'start-dev', '--ip', ip, '--port', String(port)];
  if (namespace !== 'default') args.push('--namespace', namespace);
  if (uiPort === false) args.push('--headless');
  else args.push('--ui-port', String(uiPort), '--ui-disable-news-fetch'); // no internet: don't fetch the newsfeed
  if (dbFilename) {
    await fs.mkdir(path.dirname(dbFilename), { recursive: true });
    const pragmas = { journal_mode: 'WAL', synchronous: 'NORMAL', ...opts.sqlitePragmas };
    args.push('--db-filename', dbFilename);
    for (const [k, v] of Object.entries(pragmas)) args.push('--sqlite-pragma', `${k}=${v}`);
  }
  for (const key of searchAttributes) {
    args.push('--search-attribute', `${key.name}=${searchAttributeTypeName(key.type)}`);
  }
  for (const [k, v] of Object.entries({ ...DEFAULT_DYNAMIC_CONFIG, ...opts.dynamicConfig })) {
    args.push('--dynamic-config-value', `${k}=${JSON.stringify(v)}`);
  }
  if (opts.logLevel) args.push('--log-level', opts.logLevel);
  args.push(...(opts.extraArgs ?? []));

  if (pidFile) await stopLeftoverServer(pidFile, dbFilename!);

  const child = spawn(cli, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: opts.detached ?? false });
  const output = captureOutput(child, opts.onOutput);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  // A server left behind when this process exits would hold the port (and the SQLite file) hostage.
  const killOnExit = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  };
  process.on('exit', killOnExit);
  // Recorded at once, so even a run killed during start-up can be cleaned up by the next one.
  if (pidFile && child.pid !== undefined) await fs.writeFile(pidFile, `${child.pid}\n`);

  let stopping: Promise<void> | undefined;
  const stop = (timeoutMs = 10_000): Promise<void> =>
    (stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        child.kill('SIGTERM');
        if (!(await settlesWithin(exited, timeoutMs))) {
          child.kill('SIGKILL');
          await settlesWithin(exited, 5_000);
        }
      }
      process.removeListener('exit', killOnExit);
      if (pidFile) await fs.rm(pidFile, { force: true });
    })());

  const address = `${ip.includes(':') ? `[${ip}]` : ip}:${port}`;
  const describe = () => `'${cli} ${args.join(' ')}'`;
  const failure = (message: string) =>
    new Error(`${message}\nCommand: ${describe()}\nServer output:\n${indent(output.tail() || '(none)')}`);

  const readiness = new AbortController();
  try {
    const early = await Promise.race([
      spawnError.then((err) => failure(`Could not start the Temporal dev server: ${err.message}`)),
      exited.then(({ code, signal }) => failure(`The Temporal dev server exited during start-up (${signal ?? `exit code ${code}`}).`)),
      waitUntilReady({
        address,
        namespace,
        searchAttributes,
        timeoutMs: opts.startupTimeoutMs ?? 60_000,
        signal: readiness.signal,
      }).then(
        () => undefined,
        (err: Error) => failure(err.message),
      ),
    ]);
    if (early) throw early;
  } catch (err) {
    await stop(2_000);
    throw err;
  } finally {
    readiness.abort(); // ends the polling loop if the process died first
  }

  const uiHost = ip === '127.0.0.1' || ip === '0.0.0.0' || ip === '::1' || ip === '::' ? 'localhost' : ip;
  return {
    address,
    namespace,
    uiUrl: uiPort === false ? undefined : `http://${uiHost}:${uiPort}`,
    pid: child.pid!,
    exited,
    outputTail: output.tail,
    stop,
  };
}

/**
 * Polls the frontend until the namespace answers, then makes sure our search attributes exist.
 * (`--search-attribute` only applies when the CLI creates the namespace, i.e. not on a persisted
 * database created before a key was added: checked with CLI 1.9.1.)
 */
async function waitUntilReady(args: {
  address: string;
  namespace: string;
  searchAttributes: readonly SearchAttributeKey<SearchAttributeType>[];
  timeoutMs: number;
  signal: AbortSignal;
}): Promise<void> {
  const deadline = Date.now() + args.timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline && !args.signal.aborted) {
    let connection: Connection | undefined;
    try {
      connection = await Connection.connect({ address: args.address, connectTimeout: '1 second' });
      await connection.workflowService.describeNamespace({ namespace: args.namespace });
      await ensureSearchAttributes(connection, args.namespace, args.searchAttributes);
      return;
    } catch (err) {
      lastError = err;
    } finally {
      await connection?.close().catch(() => undefined);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const reason = lastError instanceof Error ? lastError.message : String(lastError);
  throw new Error(`The Temporal dev server did not answer on ${args.address} within ${args.timeoutMs} ms (last error: ${reason}).`);
}

async function ensureSearchAttributes(
  connection: Connection,
  namespace: string,
  keys: readonly SearchAttributeKey<SearchAttributeType>[],
): Promise<void> {
  if (keys.length === 0) return;
  const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
  const existing = customAttributes ?? {};
  const missing: Record<string, number> = {};
  for (const key of keys) {
    const wanted = encodeSearchAttributeIndexedValueType(key.type)!;
    const current = existing[key.name];
    if (current === undefined || current === null) missing[key.name] = wanted;
    else if (current !== wanted) {
      throw new Error(
        `Search attribute ${key.name} is registered with another type (${current}, want ${searchAttributeTypeName(key.type)}); ` +
          'delete the dev database to recreate it.',
      );
    }
  }
  if (Object.keys(missing).length === 0) return;
  try {
    await connection.operatorService.addSearchAttributes({ namespace, searchAttributes: missing });
  } catch (err) {
    if ((err as { code?: number }).code !== 6 /* ALREADY_EXISTS: lost a race, fine */) throw err;
  }
}

/**
 * If a previous run was killed (SIGKILL, crash) before it could stop its server, that server still
 * holds the port and the SQLite file. We only touch a process we recorded ourselves, and only if its
 * command line is a `start-dev` on the same database file.
 */
async function stopLeftoverServer(pidFile: string, dbFilename: string): Promise<void> {
  const pid = Number((await fs.readFile(pidFile, 'utf8').catch(() => '')).trim());
  if (!pid || !isAlive(pid)) {
    await fs.rm(pidFile, { force: true });
    return;
  }
  const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!cmdline.includes('start-dev') || !cmdline.includes(dbFilename)) return;
  process.stderr.write(`[conduit] Stopping a Temporal dev server left over from a previous run (pid ${pid})...\n`);
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  await fs.rm(pidFile, { force: true });
}

function captureOutput(child: ChildProcess, onLine?: (line: string) => void) {
  let tail = '';
  const max = 16_000;
  for (const stream of [child.stdout, child.stderr]) {
    let partial = '';
    stream?.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      tail = (tail + text).slice(-max);
      if (!onLine) return;
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) onLine(line);
    });
  }
  return { tail: () => tail.trim() };
}

const indent = (s: string) =>
  s
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
