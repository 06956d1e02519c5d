/**
 * `npx tsx src/dev/install-tools.ts`: makes sure the Temporal CLI is available (installing it into
 * `.tools/` on first use) and prints where it is. `.ci/run` calls it before the tests so that no
 * test pays for the download.
 */
import { spawnSync } from 'node:child_process';
import { resolveTemporalCli } from './temporal-cli';

async function main(): Promise<void> {
  const cli = await resolveTemporalCli();
  const version = spawnSync(cli, ['--version'], { encoding: 'utf8', timeout: 30_000 }).stdout?.trim();
  console.log(`temporal: ${cli}${version ? `  (${version})` : ''}`);
}

main().catch((err: unknown) => {
  console.error(`install-tools: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
