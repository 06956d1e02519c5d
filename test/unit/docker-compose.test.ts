import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { CONFIG_VARIABLES, configSchema, loadConfig } from '../../src/config';
import { searchAttributeTypeName } from '../../src/dev/temporal-dev-server';
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
    (_match, dollar: string | undefined, braced: string | undefined, op: string | undefined, arg: string | undefined, bare: string | undefined) => {
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
    Object.entries(env).map(([k, v]) => [k, v === null || v === undefined ? `\${${k}}` : String(v)]),
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
    const result = configSchema.safeParse(without);
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
  const combinedCheck = configSchema.safeParse(combined);
  if (!combinedCheck.success) {
    problems.push(`the schema rejects the services' combined environment: ${combinedCheck.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
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
      loadConfig(resolved[name]!);
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
      const schemaDefault = configSchema.safeParse(without);
      const composeDefault = configSchema.safeParse({ ...without, [key]: m[1] });
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
        const expected = { user: dbEnv.POSTGRES_USER ?? 'postgres', password: dbEnv.POSTGRES_PASSWORD, database: dbEnv.POSTGRES_DB ?? dbEnv.POSTGRES_USER ?? 'postgres' };
        const actual = { user: decodeURIComponent(url.username), password: decodeURIComponent(url.password), database: url.pathname.slice(1) };
        if (JSON.stringify(actual) !== JSON.stringify(expected)) {
          problems.push(`${name}: DATABASE_URL (${actual.user}@…/${actual.database}) does not match the ${url.hostname} service's user/password/database`);
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

const load = (): ComposeFile => parse(fs.readFileSync(COMPOSE_FILE, 'utf8')) as ComposeFile;
/** A deep copy whose api and worker no longer share the aliased environment object. */
const copy = (): ComposeFile & { services: Record<string, Service> } => structuredClone(load()) as never;
const envOf = (doc: ComposeFile, name: string) => {
  const service = doc.services![name]!;
  service.environment = { ...(service.environment as Record<string, unknown>) };
  return service.environment as Record<string, unknown>;
};

describe('docker-compose.yml', () => {
  test('is consistent with the config schema, its own services and the search attributes', () => {
    expect(checkCompose(load())).toEqual([]);
  });

  test('the required variables are derived from the schema, not listed by hand', () => {
    const api = resolvedEnvironment(load().services!.api!, OPERATOR_ENV);
    const required = requiredVariables(api);
    expect(required.length).toBeGreaterThan(0);
    for (const name of required) expect(configSchema.safeParse({ ...api, [name]: undefined }).success).toBe(false);
    for (const name of CONFIG_VARIABLES.filter((n) => !required.includes(n))) {
      expect(configSchema.safeParse({ ...api, [name]: undefined }).success).toBe(true);
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
      (doc.services.worker!.depends_on as Record<string, unknown>) = { ...(doc.services.worker!.depends_on as object), redis: { condition: 'service_started' } };
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

    test('search attributes out of sync', () => {
      const doc = copy();
      envOf(doc, 'temporal-setup').SEARCH_ATTRIBUTES = 'ConnectionStatus=Keyword Provider=Keyword';
      expect(checkCompose(doc).some((p) => p.startsWith('temporal-setup registers'))).toBe(true);
    });
  });
});
