import fs from 'node:fs/promises';
import { getTestServers, setTestServers } from './global-state';

/** Stops the servers the global setup started (reverse order) and removes their temp directory. */
export default async function globalTeardown(): Promise<void> {
  await stopTestServers();
}

export async function stopTestServers(): Promise<void> {
  const servers = getTestServers();
  if (!servers) return;
  setTestServers(undefined);
  const problems: string[] = [];
  for (const { name, stop } of [...servers.stops].reverse()) {
    await stop().catch((err: unknown) => problems.push(`${name}: ${err instanceof Error ? err.message : String(err)}`));
  }
  await fs.rm(servers.tmpDir, { recursive: true, force: true });
  if (problems.length) console.error(`[global-teardown] could not stop cleanly:\n  ${problems.join('\n  ')}`);
}
