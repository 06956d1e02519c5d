/**
 * `npm run test:fuzz`: Schemathesis fuzzes every operation of `/openapi.json` against the real stack.
 *
 * Starts what the integration tests use (embedded Postgres and a Temporal dev server through the
 * jest global setup, then `startStack`: a fresh database, both provider simulators, the API on a free
 * loopback port and the worker as a child process), signs up a tenant with an active connection of
 * each provider (Bitrise with a simulator token, Bitbucket through the simulator's OAuth round trip)
 * and a spare one for DELETE, and hands their ids, resources and real cursors to Schemathesis as
 * dictionaries, so that routes under /v1/connections/{id} are reached rather than answering 404.
 *
 * Checks: not_a_server_error, status_code_conformance, content_type_conformance,
 * response_schema_conformance. Prints the request count and the failures per check, and exits
 * non-zero on any failure, on fewer than MIN_REQUESTS requests, or when the run overruns its budget.
 * Everything it started is stopped on the way out, whatever happened.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { resolveSchemathesis, SCHEMATHESIS_VERSION } from '../../dev/schemathesis';
import globalSetup from '../helpers/global-setup';
import { stopTestServers } from '../helpers/global-teardown';
import { completeOAuth, startStack, waitFor, waitForStatus, type Stack } from '../helpers/stack';
import { MANIFESTS } from '../../src/providers/manifests';

const CHECKS = ['not_a_server_error', 'status_code_conformance', 'content_type_conformance', 'response_schema_conformance'];
/** Test cases per operation and phase; ~40 operations × (examples + coverage + fuzzing) comes to well over 1,000 requests. */
const MAX_EXAMPLES = Number(process.env.FUZZ_MAX_EXAMPLES ?? 30);
const MIN_REQUESTS = 1000;
/** Schemathesis itself is killed after this long. */
const FUZZ_TIMEOUT_MS = Number(process.env.FUZZ_TIMEOUT_SECONDS ?? 240) * 1000;

/** Ctrl-C or a CI timeout: stop the fuzzer, then let `finally` stop the stack. */
let stopFuzzer: (() => void) | undefined;
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    console.error(`[fuzz] ${signal}: stopping`);
    stopFuzzer?.();
  });
}

async function main(): Promise<number> {
  const started = Date.now();
  const cli = await resolveSchemathesis();
  const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'conduit-fuzz-'));
  let stack: Stack | undefined;
  try {
    await globalSetup();
    stack = await startStack();
    const { apiKey } = await stack.createTenant('Fuzz');
    const setup = await prepareConnections(stack, apiKey);
    console.log(`[fuzz] stack ready in ${seconds(started)} s: API ${stack.apiUrl}`);

    const config = schemathesisConfig({ apiKey, adminToken: stack.env.ADMIN_TOKEN!, ...setup });
    const configFile = path.join(workDir, 'schemathesis.toml');
    await fs.writeFile(configFile, config);
    const report = path.join(workDir, 'report.ndjson');

    const fuzzStarted = Date.now();
    const exit = await runSchemathesis(
      cli,
      [
        '--config-file',
        configFile,
        'run',
        `${stack.apiUrl}/openapi.json`,
        '--checks',
        CHECKS.join(','),
        '--max-examples',
        String(MAX_EXAMPLES),
        '--workers',
        '4',
        '--request-timeout',
        '40',
        '--generation-database',
        'none',
        '--seed',
        process.env.FUZZ_SEED ?? String(Math.floor(Math.random() * 2 ** 31)),
        '--no-color',
        '--report',
        'ndjson',
        '--report-ndjson-path',
        report,
      ],
      workDir,
    );
    const fuzzSeconds = seconds(fuzzStarted);

    const counts = await summarize(report);
    console.log(`\n[fuzz] Schemathesis ${SCHEMATHESIS_VERSION}: ${counts.requests} requests in ${fuzzSeconds} s (exit ${exit})`);
    for (const check of CHECKS)
      console.log(`[fuzz]   ${check}: ${counts.runs[check] ?? 0} checked, ${counts.failures[check] ?? 0} failures`);
    for (const [check, n] of Object.entries(counts.failures)) if (!CHECKS.includes(check)) console.log(`[fuzz]   ${check}: ${n} failures`);
    const serverErrors = stack.apiLogs.filter((l) => l.includes('unhandled error'));
    if (serverErrors.length) console.log(`[fuzz] API logged ${serverErrors.length} unhandled errors, first:\n${serverErrors[0]}`);

    const problems: string[] = [];
    if (exit !== 0) problems.push(`schemathesis exited with ${exit}`);
    if (counts.requests < MIN_REQUESTS) problems.push(`only ${counts.requests} requests (want ≥ ${MIN_REQUESTS})`);
    if (Object.values(counts.failures).some((n) => n > 0)) problems.push('failures found');
    if (problems.length) {
      console.error(`[fuzz] FAILED: ${problems.join('; ')}`);
      return 1;
    }
    console.log(`[fuzz] green in ${seconds(started)} s`);
    return 0;
  } finally {
    await stack?.stop().catch((err: unknown) => console.error('[fuzz] stopping the stack:', err));
    await stopTestServers().catch((err: unknown) => console.error('[fuzz] stopping Postgres/Temporal:', err));
    if (process.env.FUZZ_KEEP) console.log(`[fuzz] kept ${workDir}`);
    else await fs.rm(workDir, { recursive: true, force: true });
  }
}

interface FuzzTargets {
  /** Active connections of every provider, for every route under /v1/connections/{id}. */
  connectionIds: string[];
  /** A connection of its own for DELETE, so disconnecting it does not turn every other action into a 409. */
  disposableIds: string[];
  resources: string[];
  cursors: string[];
  /** The secrets of invite links to those connections, so the invite pages answer more than 404. */
  inviteSecrets: string[];
}

/** A Bitrise connection with a simulator token, a Bitbucket one through OAuth, both active and synced once. */
async function prepareConnections(stack: Stack, apiKey: string): Promise<FuzzTargets> {
  const create = async (provider: string) => {
    const res = await stack.request('POST', '/v1/connections', { apiKey, body: { provider, name: `fuzz ${provider}` } });
    if (res.status !== 201) throw new Error(`creating a ${provider} connection: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.id as string;
  };
  const bitrise = await create('bitrise');
  const put = await stack.request('PUT', `/v1/connections/${bitrise}/credentials`, {
    apiKey,
    body: { token: stack.bitrise.control.createToken() },
  });
  if (put.status !== 200) throw new Error(`Bitrise token: ${put.status} ${JSON.stringify(put.body)}`);
  const bitbucket = await create('bitbucket');
  await completeOAuth(stack, apiKey, bitbucket);
  const disposable = await create('bitrise');
  for (const id of [bitrise, bitbucket]) await waitForStatus(stack, apiKey, id, 'active', 60_000);
  // The first sync, so records and runs exist and real cursors can be handed out.
  for (const id of [bitrise, bitbucket]) {
    await waitFor(
      async () =>
        ((await stack.request('GET', `/v1/connections/${id}/runs`, { apiKey })).body.items ?? []).some((r: any) => r.status !== 'running'),
      90_000,
      `the first sync of ${id}`,
    );
  }
  const cursors: string[] = [];
  const list = await stack.request('GET', '/v1/connections?limit=1', { apiKey });
  if (list.body.nextCursor) cursors.push(list.body.nextCursor);
  for (const [id, provider] of [
    [bitrise, 'bitrise'],
    [bitbucket, 'bitbucket'],
  ] as const) {
    for (const resource of MANIFESTS[provider].resources) {
      const page = await stack.request('GET', `/v1/connections/${id}/records/${resource}?limit=1`, { apiKey });
      if (page.body.nextCursor) cursors.push(page.body.nextCursor);
    }
  }
  const resources = [...new Set(Object.values(MANIFESTS).flatMap((m) => [...m.resources]))];
  const inviteSecrets: string[] = [];
  for (const id of [bitrise, bitbucket]) {
    const invite = await stack.request('POST', `/v1/connections/${id}/invites`, { apiKey });
    if (invite.status !== 201) throw new Error(`invite for ${id}: ${invite.status} ${JSON.stringify(invite.body)}`);
    inviteSecrets.push(new URL(invite.body.inviteUrl).pathname.split('/')[2]!);
  }
  return { connectionIds: [bitrise, bitbucket], disposableIds: [disposable], resources, cursors, inviteSecrets };
}

const tomlString = (s: string) => JSON.stringify(s);
const tomlArray = (xs: string[]) => `[${xs.map(tomlString).join(', ')}]`;

function schemathesisConfig(t: FuzzTargets & { apiKey: string; adminToken: string }): string {
  return `# Written by test/fuzz/run.ts for one run.
hooks = ${tomlString(path.join(__dirname, 'hooks.py'))}
headers = { Authorization = ${tomlString(`Bearer ${t.apiKey}`)} }

[dictionaries.connection-ids]
values = ${tomlArray(t.connectionIds)}

[dictionaries.disposable-ids]
values = ${tomlArray(t.disposableIds)}

[dictionaries.resources]
values = ${tomlArray(t.resources)}

[dictionaries.cursors]
values = ${tomlArray(t.cursors.length ? t.cursors : ['none'])}

[dictionaries.invite-secrets]
values = ${tomlArray(t.inviteSecrets)}

[parameters]
"path.id" = { dictionary = "connection-ids", probability = 0.9 }
"path.secret" = { dictionary = "invite-secrets", probability = 0.7 }
"path.resource" = { dictionary = "resources", probability = 0.8 }
"query.cursor" = { dictionary = "cursors", probability = 0.3 }

[[operations]]
include-name = "DELETE /v1/connections/{id}"
parameters = { "path.id" = { dictionary = "disposable-ids", probability = 0.9 } }

# The invite pages take a secret and a token, nothing more to explore: fewer cases keep the run's time.
[[operations]]
include-path-regex = "^/invite/"
generation = { max-examples = ${Math.min(20, MAX_EXAMPLES)} }

[[operations]]
include-name = "POST /v1/tenants"
headers = { Authorization = ${tomlString(`Bearer ${t.adminToken}`)} }
`;
}

function runSchemathesis(cli: string, args: string[], cwd: string): Promise<number> {
  return new Promise((resolve, reject) => {
    // Own process group, so the timeout can stop it and anything it spawned.
    const child = spawn(cli, args, {
      cwd,
      stdio: ['ignore', 'inherit', 'inherit'],
      detached: true,
      env: { ...process.env, NO_COLOR: '1' },
    });
    const kill = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    stopFuzzer = kill;
    if (interrupted) kill();
    const timer = setTimeout(() => {
      console.error(`[fuzz] Schemathesis overran ${FUZZ_TIMEOUT_MS / 1000} s: stopping it`);
      kill();
    }, FUZZ_TIMEOUT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      stopFuzzer = undefined;
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}

/** Requests sent and failures per check, from Schemathesis's NDJSON event stream. */
async function summarize(file: string): Promise<{ requests: number; runs: Record<string, number>; failures: Record<string, number> }> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  let requests = 0;
  const runs: Record<string, number> = {};
  const failures: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const event = JSON.parse(line) as Record<string, any>;
    const scenario = event.ScenarioFinished;
    if (!scenario) continue;
    for (const node of Object.values<any>(scenario.recorder?.interactions ?? {})) if (node.response) requests++;
    for (const checks of Object.values<any>(scenario.recorder?.checks ?? {})) {
      for (const check of checks as { name: string; status: string }[]) {
        runs[check.name] = (runs[check.name] ?? 0) + 1;
        if (check.status !== 'success' && check.status !== 'skip') failures[check.name] = (failures[check.name] ?? 0) + 1;
      }
    }
  }
  return { requests, runs, failures };
}

const seconds = (since: number) => ((Date.now() - since) / 1000).toFixed(1);

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('[fuzz]', err);
    process.exit(1);
  },
);
