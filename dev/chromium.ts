import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { run } from './temporal-cli';

/**
 * Debian's Chromium, which the console's browser test (test/browser/) drives with playwright-core.
 * Installed with apt when missing and we are root (as CI runs); otherwise the command is printed.
 */
export const CHROMIUM_PATH = '/usr/bin/chromium';

const INSTALL = 'apt-get update && apt-get install -y chromium';

/** Where Chromium is and its version, after installing it if it was missing and we could. */
export async function ensureChromium(): Promise<string> {
  if (!existsSync(CHROMIUM_PATH)) {
    if (process.platform !== 'linux' || process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) {
      return `missing: the browser test needs ${CHROMIUM_PATH}; install it with \`sudo sh -c '${INSTALL}'\``;
    }
    const env = { DEBIAN_FRONTEND: 'noninteractive' };
    await run('apt-get', ['update'], 'apt-get update', env);
    await run('apt-get', ['install', '-y', 'chromium'], 'apt-get install chromium', env);
  }
  const version = spawnSync(CHROMIUM_PATH, ['--version'], { encoding: 'utf8', timeout: 30_000 }).stdout?.trim();
  return `${CHROMIUM_PATH}${version ? `  (${version})` : ''}`;
}
