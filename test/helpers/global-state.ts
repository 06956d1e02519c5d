/**
 * What the global setup started, handed to the global teardown. Jest runs both in the same context,
 * so a global is the documented way to share it ("Any global variables that are defined through
 * globalSetup can only be read in globalTeardown").
 */
export interface TestServers {
  tmpDir: string;
  /** Stops the servers this run started, in reverse start order. */
  stops: { name: string; stop(): Promise<void> }[];
}

declare global {
  var __conduitTestServers: TestServers | undefined;
}

export function getTestServers(): TestServers | undefined {
  return globalThis.__conduitTestServers;
}

export function setTestServers(servers: TestServers | undefined): void {
  globalThis.__conduitTestServers = servers;
}
