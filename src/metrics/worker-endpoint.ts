import http from 'node:http';
import type net from 'node:net';
import type { TelemetryOptions } from '@temporalio/worker';
import { constantTimeEqual } from '../crypto/tokens';
import { registry } from '.';

/**
 * The worker's operations port (`WORKER_METRICS_PORT`). `GET /metrics`: our metrics from
 * prom-client, followed by the Temporal SDK's (slots, pollers, task latencies, sticky cache), which
 * its Core runtime serves on a loopback port of its own that nothing else sees. The two sets
 * cannot collide: ours are `conduit_*` plus Node's process metrics, the SDK's are `temporal_*`.
 * `GET /healthz`: 200 while every Temporal worker of the process runs, else 503 (a health check
 * that needs no token).
 */

/** The Runtime's telemetry: Core's Prometheus exporter on that loopback port, durations in seconds. */
export function sdkMetricsTelemetry(sdkPort: number): TelemetryOptions {
  return {
    metrics: {
      prometheus: { bindAddress: `127.0.0.1:${sdkPort}`, countersTotalSuffix: true, useSecondsForDurations: true },
    },
  };
}

export interface MetricsEndpoint {
  port: number;
  close(): Promise<void>;
}

export interface MetricsEndpointOptions {
  port: number;
  host?: string;
  /** METRICS_TOKEN: when set, a scrape must send it as a bearer token. */
  token?: string;
  /** Where the SDK's exporter listens, if it was installed. */
  sdkPort?: number;
  /** Whether the process is doing its job (`/healthz`). */
  healthy?: () => boolean;
}

async function sdkText(sdkPort: number | undefined): Promise<string> {
  if (!sdkPort) return '';
  try {
    const res = await fetch(`http://127.0.0.1:${sdkPort}/metrics`, { signal: AbortSignal.timeout(2_000) });
    return res.ok ? await res.text() : '';
  } catch {
    // The SDK's figures are missing from this scrape; ours are still worth serving.
    return '';
  }
}

export async function startMetricsEndpoint(o: MetricsEndpointOptions): Promise<MetricsEndpoint> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === '/healthz') {
      const ok = o.healthy?.() ?? true;
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ok ? 'ok' : 'unavailable' }));
      return;
    }
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    const sent = req.headers.authorization?.match(/^Bearer\s+(\S+)\s*$/i)?.[1] ?? '';
    if (o.token && !constantTimeEqual(sent, o.token)) {
      res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Bearer' }).end('unauthorized\n');
      return;
    }
    Promise.all([registry.metrics(), sdkText(o.sdkPort)]).then(
      ([ours, sdk]) => res.writeHead(200, { 'content-type': registry.contentType }).end(sdk ? `${ours}\n${sdk}` : ours),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host ?? '0.0.0.0', () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
