import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { build } from '../../dev/build';
import { CONFIG_VARIABLES, envSchema, loadConfig } from '../../src/config';
import { searchAttributeTypeName } from '../../dev/temporal-dev-server';
import { SEARCH_ATTRIBUTE_KEYS } from '../../src/temporal/search-attributes';

/**
 * docker-compose.yml can't be run here (no Docker engine), so this proves it agrees with the code:
 * the config schema (src/config.ts), the services it references, and the search attributes. The
 * checks collect problems instead of asserting one by one, so the tests at the bottom can feed them
 * broken copies of the file and see each check fire.
 */

const ROOT = path.resolve(__dirname, '../..');
const COMPOSE_FILE = path.join(ROOT, 'docker-compose.yml');
const APP_SERVICES = ['api', 'worker'] as const;

/** What an operator exports before `docker compose up` (values valid for the schema). */
const OPERATOR_ENV: Record<string, string> = {
  POSTGRES_PASSWORD: 'compose-test-password',
  ADMIN_TOKEN: 'compose-test-admin-token-0123456789',
  ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64'),
};

type Env = Record<string, string>;
interface Service {
  image?: string;
  build?: unknown;
  command?: string | string[];
  environment?: Record<string, unknown> | string[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: unknown;
  restart?: string;
  deploy?: { replicas?: number };
  ports?: string[];
  volumes?: string[];
}
interface ComposeFile {
  services?: Record<string, Service>;
}

// ---------------------------------------------------------------------------------------------
// Compose semantics we need: variable interpolation and the two `environment` forms.

class MissingVariableError extends Error {}

/** Docker Compose interpolation: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`, `${VAR?err}`. */
function interpolate(value: string, env: Env): string {
  return value.replace(
    /\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g,
    (
      _match,
      dollar: string | undefined,
      braced: string | undefined,
      op: string | undefined,
      arg: string | undefined,
      bare: string | undefined,
    ) => {
      if (dollar) return '$';
      const name = (braced ?? bare)!;
      const v = env[name];
      switch (op) {
        case ':-':
          return v ? v : (arg ?? '');
        case '-':
          return v !== undefined ? v : (arg ?? '');
        case ':?':
          if (!v) throw new MissingVariableError(`${name}: ${arg}`);
          return v;
        case '?':
          if (v === undefined) throw new MissingVariableError(`${name}: ${arg}`);
          return v;
        default:
          return v ?? '';
      }
    },
  );
}

/** A service's environment before interpolation, as `name → raw string`. */
function rawEnvironment(service: Service): Env {
  const env = service.environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((entry) => {
        const i = entry.indexOf('=');
        return i === -1 ? [entry, `\${${entry}}`] : [entry.slice(0, i), entry.slice(i + 1)];
      }),
    );
  }
  return Object.fromEntries(
    Object.entries(env).map(([k, v]) => [k, v === null || v === undefined ? `\${${k}}` : String(v as string | number | boolean)]),
  );
}

function resolvedEnvironment(service: Service, operatorEnv: Env): Env {
  return Object.fromEntries(Object.entries(rawEnvironment(service)).map(([k, v]) => [k, interpolate(v, operatorEnv)]));
}

function dependencies(service: Service): [string, string | undefined][] {
  const deps = service.depends_on ?? [];
  return Array.isArray(deps) ? deps.map((d) => [d, undefined]) : Object.entries(deps).map(([d, o]) => [d, o?.condition]);
}

/**
 * Variables the schema has no default for, derived from the schema itself: drop one variable from an
 * environment the schema accepts and see whether the schema then complains about that variable.
 */
function requiredVariables(completeEnv: Env): string[] {
  return CONFIG_VARIABLES.filter((name) => {
    const { [name]: _dropped, ...without } = completeEnv;
    const result = envSchema.safeParse(without);
    return !result.success && result.error.issues.some((issue) => issue.path[0] === name);
  });
}

// ---------------------------------------------------------------------------------------------
// The checks

function checkCompose(doc: ComposeFile, operatorEnv: Env = OPERATOR_ENV): string[] {
  const problems: string[] = [];
  const services = doc.services ?? {};
  const serviceNames = new Set(Object.keys(services));

  for (const name of APP_SERVICES) if (!services[name]) problems.push(`service "${name}" is missing`);
  const apps = APP_SERVICES.filter((name) => services[name]);

  // Interpolate each app service's environment with the operator's variables.
  const resolved: Record<string, Env> = {};
  for (const name of apps) {
    try {
      resolved[name] = resolvedEnvironment(services[name]!, operatorEnv);
    } catch (err) {
      problems.push(`${name}: environment does not interpolate: ${(err as Error).message}`);
      resolved[name] = {};
    }
  }

  // 1. Nothing but config variables.
  for (const name of apps) {
    for (const key of Object.keys(resolved[name]!)) {
      if (!(CONFIG_VARIABLES as string[]).includes(key)) problems.push(`${name}: ${key} is not a config variable`);
    }
  }

  // 2. Every variable the schema requires reaches both services, non-empty, and from the operator
  //    (a `${VAR:?}` or a literal), never from a default that would let the stack start without it.
  const combined = Object.assign({}, ...apps.map((n) => resolved[n])) as Env;
  const combinedCheck = envSchema.safeParse(combined);
  if (!combinedCheck.success) {
    problems.push(
      `the schema rejects the services' combined environment: ${combinedCheck.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  const required = combinedCheck.success ? requiredVariables(combined) : [];
  if (combinedCheck.success && required.length === 0) problems.push('derived no required variables at all: the derivation is broken');
  for (const name of apps) {
    for (const key of required) {
      const raw = rawEnvironment(services[name]!)[key];
      if (raw === undefined || !resolved[name]![key]) {
        problems.push(`${name}: required variable ${key} is not provided`);
        continue;
      }
      const silentDefault = (() => {
        try {
          return raw.includes('$') && interpolate(raw, {}) !== '';
        } catch (err) {
          if (err instanceof MissingVariableError) return false;
          throw err;
        }
      })();
      if (silentDefault) problems.push(`${name}: required variable ${key} falls back to a default; use \${VAR:?message}`);
    }
  }

  // 3. The whole service environment loads, exactly as the process would load it.
  for (const name of apps) {
    try {
      loadConfig(resolved[name]);
    } catch (err) {
      problems.push(`${name}: loadConfig fails: ${(err as Error).message}`);
    }
  }

  // 4. Defaults written into the compose file equal the schema's own defaults.
  for (const name of apps) {
    for (const [key, raw] of Object.entries(rawEnvironment(services[name]!))) {
      const m = new RegExp(`^\\$\\{${key}:?-(.*)\\}$`).exec(raw);
      if (!m || !combinedCheck.success) continue;
      const { [key]: _dropped, ...without } = combined;
      const schemaDefault = envSchema.safeParse(without);
      const composeDefault = envSchema.safeParse({ ...without, [key]: m[1] });
      const a = schemaDefault.success ? (schemaDefault.data as Record<string, unknown>)[key] : '(invalid)';
      const b = composeDefault.success ? (composeDefault.data as Record<string, unknown>)[key] : '(invalid)';
      if (JSON.stringify(a) !== JSON.stringify(b)) {
        problems.push(`${name}: ${key} defaults to ${JSON.stringify(b)} in compose but ${JSON.stringify(a)} in the schema`);
      }
    }
  }

  // 5. DATABASE_URL and TEMPORAL_ADDRESS point at services of this file, with matching credentials.
  for (const name of apps) {
    const env = resolved[name]!;
    if (env.DATABASE_URL) {
      const url = new URL(env.DATABASE_URL);
      const db = services[url.hostname];
      if (!db) problems.push(`${name}: DATABASE_URL host "${url.hostname}" is not a service`);
      else {
        const dbEnv = resolvedEnvironment(db, operatorEnv);
        const expected = {
          user: dbEnv.POSTGRES_USER ?? 'postgres',
          password: dbEnv.POSTGRES_PASSWORD,
          database: dbEnv.POSTGRES_DB ?? dbEnv.POSTGRES_USER ?? 'postgres',
        };
        const actual = {
          user: decodeURIComponent(url.username),
          password: decodeURIComponent(url.password),
          database: url.pathname.slice(1),
        };
        if (JSON.stringify(actual) !== JSON.stringify(expected)) {
          problems.push(
            `${name}: DATABASE_URL (${actual.user}@…/${actual.database}) does not match the ${url.hostname} service's user/password/database`,
          );
        }
        if ((url.port || '5432') !== '5432') problems.push(`${name}: DATABASE_URL port ${url.port} is not Postgres' 5432`);
      }
    }
    const temporalHost = (env.TEMPORAL_ADDRESS ?? 'localhost:7233').split(':')[0]!;
    if (!serviceNames.has(temporalHost)) problems.push(`${name}: TEMPORAL_ADDRESS host "${temporalHost}" is not a service`);
  }

  // 6. depends_on names exist; service_healthy targets have a healthcheck.
  for (const [name, service] of Object.entries(services)) {
    for (const [dep, condition] of dependencies(service)) {
      if (!serviceNames.has(dep)) problems.push(`${name}: depends_on "${dep}", which is not a service`);
      else if (condition === 'service_healthy' && !services[dep]!.healthcheck) {
        problems.push(`${name}: waits for "${dep}" to be healthy, but it has no healthcheck`);
      }
    }
  }
  for (const name of apps) {
    const deps = new Map(dependencies(services[name]!));
    if (deps.get('migrate') !== 'service_completed_successfully') {
      problems.push(`${name}: must wait for the migrate service to complete successfully`);
    }
  }

  // 7. `node dist/x.js` commands name a compiled entry point that exists in src/.
  for (const [name, service] of Object.entries(services)) {
    const command = Array.isArray(service.command) ? service.command : service.command?.split(/\s+/);
    const script = command?.[0] === 'node' ? command[1] : undefined;
    if (script?.startsWith('dist/') && !fs.existsSync(path.join(ROOT, script.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts')))) {
      problems.push(`${name}: runs ${script}, but there is no ${script.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts')}`);
    }
  }

  // 8. The search attributes registered by temporal-setup are exactly the code's.
  const setup = services['temporal-setup'];
  const registered = setup ? (resolvedEnvironment(setup, operatorEnv).SEARCH_ATTRIBUTES ?? '').split(/\s+/).filter(Boolean).sort() : [];
  const expected = SEARCH_ATTRIBUTE_KEYS.map((k) => `${k.name}=${searchAttributeTypeName(k.type)}`).sort();
  if (JSON.stringify(registered) !== JSON.stringify(expected)) {
    problems.push(`temporal-setup registers [${registered.join(' ')}], the code defines [${expected.join(' ')}]`);
  }

  return problems;
}

// ---------------------------------------------------------------------------------------------
// The production shape: health checks, replicas, the proxy in front of the API replicas.

const NGINX_CONF = path.join(ROOT, 'deploy/nginx/conduit.conf');

function checkProductionShape(doc: ComposeFile, nginxConf: string): string[] {
  const problems: string[] = [];
  const services = doc.services ?? {};
  const waitedFor = new Map<string, Set<string | undefined>>();
  for (const service of Object.values(services))
    for (const [dep, condition] of dependencies(service)) waitedFor.set(dep, (waitedFor.get(dep) ?? new Set()).add(condition));

  for (const [name, service] of Object.entries(services)) {
    // One-shots run to completion: others wait for their success; everything else reports its health.
    if (service.restart === 'no') {
      const conditions = [...(waitedFor.get(name) ?? [])];
      if (conditions.length === 0 || conditions.some((c) => c !== 'service_completed_successfully'))
        problems.push(`${name}: a one-shot must be waited for with service_completed_successfully`);
    } else if (!service.healthcheck) problems.push(`${name}: has no healthcheck`);
    for (const [dep, condition] of dependencies(service)) if (!condition) problems.push(`${name}: depends_on "${dep}" names no condition`);
  }

  for (const name of APP_SERVICES) {
    const replicas = services[name]?.deploy?.replicas ?? 1;
    if (replicas < 2) problems.push(`${name}: runs ${replicas} replica(s), not at least 2`);
  }
  if (services.api?.ports?.length) problems.push('api: publishes ports; replicas are reached through the proxy only');

  const proxies = Object.entries(services).filter(([, s]) =>
    (s.volumes ?? []).some((v) => v.split(':')[0] === './deploy/nginx/conduit.conf'),
  );
  if (proxies.length !== 1) problems.push(`${proxies.length} services mount deploy/nginx/conduit.conf, not exactly one`);
  const [proxyName, proxy] = proxies[0] ?? [];
  if (proxy) {
    if (!proxy.image?.startsWith('nginx:')) problems.push(`${proxyName}: is not an nginx image`);
    if (!proxy.ports?.length) problems.push(`${proxyName}: publishes no port`);
    if (new Map(dependencies(proxy)).get('api') !== 'service_healthy') problems.push(`${proxyName}: does not wait for a healthy api`);
  }
  // The upstream is the api service on the port the api listens on, re-resolved as replicas change.
  const apiPort = services.api ? resolvedEnvironment(services.api, OPERATOR_ENV).PORT : undefined;
  const upstreams = new Map<string, string[]>();
  for (const m of nginxConf.matchAll(/upstream\s+(\S+)\s*\{([^}]*)\}/g))
    upstreams.set(
      m[1]!,
      [...m[2]!.matchAll(/^\s*server\s+([^;]+);/gm)].map((s) => s[1]!.trim()),
    );
  const passes = [...nginxConf.matchAll(/proxy_pass\s+http:\/\/([^;/\s]+)/g)].map((m) => m[1]!);
  if (passes.length === 0) problems.push('nginx: no proxy_pass');
  for (const target of passes) {
    const servers = upstreams.get(target);
    if (!servers) problems.push(`nginx: proxy_pass to "${target}", which is not an upstream`);
    else if (servers.length === 0 || servers.some((s) => s !== `api:${apiPort} resolve`))
      problems.push(`nginx: upstream "${target}" is [${servers.join(', ')}], not the api replicas (api:${apiPort} resolve)`);
  }
  if (!/location\s*=\s*\/metrics\s*\{[^}]*return\s+404/.test(nginxConf)) problems.push('nginx: /metrics is not kept from the outside');
  return problems;
}

// ---------------------------------------------------------------------------------------------

const load = (): ComposeFile => parse(fs.readFileSync(COMPOSE_FILE, 'utf8')) as ComposeFile;
/** A deep copy whose api and worker no longer share the aliased environment object. */
const copy = (): ComposeFile & { services: Record<string, Service> } => structuredClone(load()) as never;
const envOf = (doc: ComposeFile, name: string) => {
  const service = doc.services![name]!;
  service.environment = { ...(service.environment as Record<string, unknown>) };
  return service.environment;
};

describe('docker-compose.yml', () => {
  test('is consistent with the config schema, its own services and the search attributes', () => {
    expect(checkCompose(load())).toEqual([]);
  });

  test('has the production shape: health checks, two replicas each, the proxy in front of the API replicas', () => {
    expect(checkProductionShape(load(), fs.readFileSync(NGINX_CONF, 'utf8'))).toEqual([]);
  });

  test('the image builds from compiled JavaScript: every entry point exists after a real build, with every asset', async () => {
    const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-build-'));
    try {
      await build(outDir);
      const inDist = (script: string) => path.join(outDir, path.relative('dist', script));
      const entryPoints = new Set<string>();
      for (const service of Object.values(load().services ?? {})) {
        const command = Array.isArray(service.command) ? service.command : service.command?.split(/\s+/);
        if (command?.[0] === 'node') entryPoints.add(command[1]!);
      }
      const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
      for (const m of dockerfile.matchAll(/^CMD \["node", "([^"]+)"\]/gm)) entryPoints.add(m[1]!);
      const scripts = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
      for (const [name, script] of Object.entries(scripts)) if (name.startsWith('start:')) entryPoints.add(script.replace(/^node /, ''));
      expect([...entryPoints].sort()).toEqual(['dist/api/server.js', 'dist/db/migrate-cli.js', 'dist/worker.js']);
      for (const script of entryPoints) expect({ script, built: fs.existsSync(inDist(script)) }).toEqual({ script, built: true });
      // The worker loads the workflows bundled at build time (WORKFLOW_BUNDLE_PATH in the image).
      expect(fs.existsSync(path.join(outDir, 'workflow-bundle.js'))).toBe(true);
      expect(dockerfile).toMatch(/^ENV WORKFLOW_BUNDLE_PATH=\/app\/dist\/workflow-bundle\.js$/m);
      // Every file of src/ that is not TypeScript (migrations, static assets) is beside the compiled code.
      const assets = (fs.readdirSync(path.join(ROOT, 'src'), { recursive: true }) as string[]).filter(
        (f) => !/\.ts$/.test(f) && fs.statSync(path.join(ROOT, 'src', f)).isFile(),
      );
      expect(assets.filter((f) => f.endsWith('.sql')).length).toBeGreaterThan(5);
      expect(assets.filter((f) => !fs.existsSync(path.join(outDir, f)))).toEqual([]);

      // The runtime stage: production dependencies only, an unprivileged user, compiled code.
      const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
      expect(runtime).toMatch(/^COPY --from=deps \/app\/node_modules/m);
      expect(runtime).toMatch(/^COPY --from=build \/app\/dist/m);
      expect(runtime).toMatch(/^USER node$/m);
      expect(dockerfile).toMatch(/^RUN npm ci --omit=dev/m);
    } finally {
      fs.rmSync(outDir, { recursive: true, force: true });
    }
  });

  test('the required variables are derived from the schema, not listed by hand', () => {
    const api = resolvedEnvironment(load().services!.api!, OPERATOR_ENV);
    const required = requiredVariables(api);
    expect(required.length).toBeGreaterThan(0);
    for (const name of required) expect(envSchema.safeParse({ ...api, [name]: undefined }).success).toBe(false);
    for (const name of CONFIG_VARIABLES.filter((n) => !required.includes(n))) {
      expect(envSchema.safeParse({ ...api, [name]: undefined }).success).toBe(true);
    }
  });

  test('the api environment loads with loadConfig', () => {
    const config = loadConfig(resolvedEnvironment(load().services!.api!, OPERATOR_ENV));
    expect(config.adminToken).toBe(OPERATOR_ENV.ADMIN_TOKEN);
    expect(config.temporal.address).toBe('temporal:7233');
    expect(new URL(config.databaseUrl).hostname).toBe('postgres');
  });

  test('refuses to start without the operator secrets', () => {
    for (const secret of Object.keys(OPERATOR_ENV)) {
      const { [secret]: _dropped, ...partial } = OPERATOR_ENV;
      expect(() => resolvedEnvironment(load().services!.api!, partial)).toThrow(MissingVariableError);
    }
  });

  describe('each check can fail', () => {
    test('an unknown variable', () => {
      const doc = copy();
      envOf(doc, 'worker').SYNC_INTERVAL = '60';
      expect(checkCompose(doc)).toContain('worker: SYNC_INTERVAL is not a config variable');
    });

    test('a required variable missing from one service', () => {
      const doc = copy();
      delete envOf(doc, 'worker').ENCRYPTION_KEY;
      expect(checkCompose(doc)).toEqual(expect.arrayContaining(['worker: required variable ENCRYPTION_KEY is not provided']));
    });

    test('a required secret with a default', () => {
      const doc = copy();
      envOf(doc, 'api').ADMIN_TOKEN = '${ADMIN_TOKEN:-change-me-change-me-change-me}';
      expect(checkCompose(doc)).toContain('api: required variable ADMIN_TOKEN falls back to a default; use ${VAR:?message}');
    });

    test('a value the schema rejects', () => {
      const doc = copy();
      envOf(doc, 'api').LOG_LEVEL = 'verbose';
      expect(checkCompose(doc).some((p) => p.startsWith('api: loadConfig fails') && p.includes('LOG_LEVEL'))).toBe(true);
    });

    test('a default that drifted from the schema', () => {
      const doc = copy();
      envOf(doc, 'worker').SYNC_INTERVAL_SECONDS = '${SYNC_INTERVAL_SECONDS:-900}';
      expect(checkCompose(doc)).toContain('worker: SYNC_INTERVAL_SECONDS defaults to 900 in compose but 3600 in the schema');
    });

    test('DATABASE_URL / TEMPORAL_ADDRESS naming a missing service or wrong credentials', () => {
      const doc = copy();
      envOf(doc, 'api').DATABASE_URL = 'postgres://conduit:${POSTGRES_PASSWORD:?x}@db:5432/conduit';
      envOf(doc, 'worker').TEMPORAL_ADDRESS = 'temporal-frontend:7233';
      const problems = checkCompose(doc);
      expect(problems).toContain('api: DATABASE_URL host "db" is not a service');
      expect(problems).toContain('worker: TEMPORAL_ADDRESS host "temporal-frontend" is not a service');

      const wrongDb = copy();
      envOf(wrongDb, 'api').DATABASE_URL = 'postgres://conduit:${POSTGRES_PASSWORD:?x}@postgres:5432/temporal';
      expect(checkCompose(wrongDb).some((p) => p.startsWith('api: DATABASE_URL (conduit@…/temporal) does not match'))).toBe(true);
    });

    test('depends_on naming a missing service, or waiting for health without a healthcheck', () => {
      const doc = copy();
      (doc.services.worker!.depends_on as Record<string, unknown>) = {
        ...(doc.services.worker!.depends_on as object),
        redis: { condition: 'service_started' },
      };
      delete doc.services.postgres!.healthcheck;
      const problems = checkCompose(doc);
      expect(problems).toContain('worker: depends_on "redis", which is not a service');
      expect(problems).toContain('api: waits for "postgres" to be healthy, but it has no healthcheck');
    });

    test('app services not waiting for migrations', () => {
      const doc = copy();
      doc.services.api!.depends_on = ['postgres', 'temporal'];
      expect(checkCompose(doc)).toContain('api: must wait for the migrate service to complete successfully');
    });

    test('a command naming a missing entry point', () => {
      const doc = copy();
      doc.services.migrate!.command = ['node', 'dist/db/migrate.cli.js'];
      expect(checkCompose(doc)).toContain('migrate: runs dist/db/migrate.cli.js, but there is no src/db/migrate.cli.ts');
    });

    test('a service without a healthcheck, a one-shot nobody waits for, a condition-less dependency', () => {
      const doc = copy();
      delete doc.services['temporal-ui']!.healthcheck;
      doc.services.worker!.depends_on = { ...(doc.services.worker!.depends_on as object), 'temporal-setup': {} };
      doc.services.api!.depends_on = {
        ...(doc.services.api!.depends_on as object),
        'temporal-setup': { condition: 'service_started' },
      };
      const problems = checkProductionShape(doc, fs.readFileSync(NGINX_CONF, 'utf8'));
      expect(problems).toContain('temporal-ui: has no healthcheck');
      expect(problems).toContain('worker: depends_on "temporal-setup" names no condition');
      expect(problems).toContain('temporal-setup: a one-shot must be waited for with service_completed_successfully');
    });

    test('one replica, a published api port, a proxy that is not in front of the replicas', () => {
      const doc = copy();
      doc.services.worker!.deploy = { replicas: 1 };
      doc.services.api!.ports = ['3000:3000'];
      const conf = fs
        .readFileSync(NGINX_CONF, 'utf8')
        .replace('server api:3000 resolve;', 'server 10.0.0.5:3000;')
        .replace(/location = \/metrics/, 'location = /stats');
      const problems = checkProductionShape(doc, conf);
      expect(problems).toContain('worker: runs 1 replica(s), not at least 2');
      expect(problems).toContain('api: publishes ports; replicas are reached through the proxy only');
      expect(problems).toContain('nginx: upstream "conduit_api" is [10.0.0.5:3000], not the api replicas (api:3000 resolve)');
      expect(problems).toContain('nginx: /metrics is not kept from the outside');
      delete doc.services.proxy;
      expect(checkProductionShape(doc, conf)).toContain('0 services mount deploy/nginx/conduit.conf, not exactly one');
    });

    test('search attributes out of sync', () => {
      const doc = copy();
      envOf(doc, 'temporal-setup').SEARCH_ATTRIBUTES = 'ConnectionStatus=Keyword Provider=Keyword';
      expect(checkCompose(doc).some((p) => p.startsWith('temporal-setup registers'))).toBe(true);
    });
  });
});
