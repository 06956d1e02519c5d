import fs from 'node:fs/promises';
import path from 'node:path';
import { bundleWorkflowCode, type WorkerOptions } from '@temporalio/worker';

const WORKFLOWS_PATH = require.resolve('../workflows');

/**
 * Where a worker's workflow code comes from. Bundling the workflows (webpack) costs seconds of CPU
 * at every worker start, which is what a restarted worker under load waits on longest; production
 * and the tests bundle once ahead of time and point `WORKFLOW_BUNDLE_PATH` at the result, as
 * Temporal recommends for production workers. Without it the worker bundles its sources at
 * start-up (development).
 */
export function workflowSource(bundlePath: string | undefined): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  return bundlePath ? { workflowBundle: { codePath: bundlePath } } : { workflowsPath: WORKFLOWS_PATH };
}

/** Bundles the workflow code into one file a worker loads with `WORKFLOW_BUNDLE_PATH` (`npm run build`, the tests' global setup). */
export async function writeWorkflowBundle(outFile: string): Promise<void> {
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietLogger });
  await fs.mkdir(path.dirname(outFile), { recursive: true });
  // Written aside and renamed, so a worker never reads half a bundle.
  const tmp = `${outFile}.${process.pid}.tmp`;
  await fs.writeFile(tmp, code);
  await fs.rename(tmp, outFile);
}

const quiet = () => undefined;
/** The bundler's info lines are webpack's module report: noise for a build step. */
const quietLogger = { log: quiet, trace: quiet, debug: quiet, info: quiet, warn: console.warn, error: console.error };
