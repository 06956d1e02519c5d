import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { writeWorkflowBundle } from '../src/temporal/workflow-bundle';

/**
 * `npm run build`: compiles src/ to dist/ (tsconfig.build.json) and copies every file of src/ that
 * is not TypeScript beside its compiled module (SQL migrations, the console's static assets, …),
 * so `node dist/…` needs nothing from src/, and bundles the workflows into `workflow-bundle.js`
 * (the image sets `WORKFLOW_BUNDLE_PATH` to it, so no worker bundles at start-up). The output directory is emptied first: a module removed
 * from src/ must not live on in dist/. `tsx dev/build.ts [outDir]`; test/unit/docker-compose.test.ts
 * builds into a temporary directory with it.
 */

const ROOT = path.resolve(__dirname, '..');
const SRC = path.join(ROOT, 'src');

export async function build(outDir = path.join(ROOT, 'dist')): Promise<void> {
  fs.rmSync(outDir, { recursive: true, force: true });
  execFileSync(
    process.execPath,
    [require.resolve('typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', outDir],
    {
      cwd: ROOT,
      stdio: 'inherit',
    },
  );
  fs.cpSync(SRC, outDir, {
    recursive: true,
    // Directories pass (their files are filtered one by one); TypeScript sources were compiled.
    filter: (source) => fs.statSync(source).isDirectory() || !/\.(c|m)?ts$/.test(source),
  });
  await writeWorkflowBundle(path.join(outDir, 'workflow-bundle.js'));
}

if (require.main === module) {
  build(process.argv[2] ? path.resolve(process.argv[2]) : undefined).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
