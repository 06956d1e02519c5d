/**
 * `npx tsx dev/install-tools.ts`: makes sure the Temporal CLI and Schemathesis (the OpenAPI fuzzer of
 * `npm run test:fuzz`) are available, installing them into `.tools/` on first use, and Chromium (the
 * console's browser test) with apt when it is missing and we are root; prints where they are.
 * `.ci/run` calls it before the tests so that no test pays for the download.
 */
import { spawnSync } from 'node:child_process';
import { ensureChromium } from './chromium';
import { resolveSchemathesis } from './schemathesis';
import { resolveTemporalCli } from './temporal-cli';

async function main(): Promise<void> {
  const cli = await resolveTemporalCli();
  const version = spawnSync(cli, ['--version'], { encoding: 'utf8', timeout: 30_000 }).stdout?.trim();
  console.log(`temporal: ${cli}${version ? `  (${version})` : ''}`);
  const fuzzer = await resolveSchemathesis();
  const fuzzerVersion = spawnSync(fuzzer, ['--version'], { encoding: 'utf8', timeout: 60_000 }).stdout?.trim();
  console.log(`schemathesis: ${fuzzer}${fuzzerVersion ? `  (${fuzzerVersion})` : ''}`);
  console.log(`chromium: ${await ensureChromium()}`);
}

main().catch((err: unknown) => {
  console.error(`install-tools: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
