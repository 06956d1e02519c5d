import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { CHROMIUM_PATH } from '../../dev/chromium';

/**
 * Debian's Chromium, driven by playwright-core; `dev/install-tools.ts` (run by `.ci/run`) installs it
 * when missing. The flags keep it off the network it would otherwise reach for on its own (updates,
 * sync, field trials): CI's network is closed, and a test must not wait on it.
 */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`${CHROMIUM_PATH} is missing: run \`npx tsx dev/install-tools.ts\` as root (it runs apt-get install -y chromium)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
