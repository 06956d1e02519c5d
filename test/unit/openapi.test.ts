import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { appRoutes, buildDocumentOnlyApp, isApiRoute } from '../helpers/routes';

/**
 * `/openapi.json` is complete and valid: a strict OpenAPI validator accepts it (every `$ref`
 * resolves), every route the app serves is in it, and every operation documents each status the
 * route can answer.
 */

type Json = Record<string, any>;
let app: FastifyInstance;
let doc: Json;

beforeAll(async () => {
  app = await buildDocumentOnlyApp();
  // What GET /openapi.json answers (app.inject would need light-my-request's ESM-only cookie under Jest).
  doc = JSON.parse(JSON.stringify(app.swagger())) as Json;
});

afterAll(async () => {
  await app?.close();
});

/**
 * swagger-parser's validate() (schema + semantic checks, resolving every `$ref`) in a plain Node child
 * process: it depends on the ESM-only json-schema-ref-parser, which Jest's CommonJS runtime cannot
 * require (see test/conformance/swagger.ts).
 */
const VALIDATE = `
const SwaggerParser = require('@apidevtools/swagger-parser');
const doc = JSON.parse(require('node:fs').readFileSync(process.argv[1], 'utf8'));
SwaggerParser.validate(doc).then(
  (api) => process.stdout.write(JSON.stringify({ ok: true, openapi: api.openapi })),
  (err) => { process.stdout.write(JSON.stringify({ ok: false, message: String(err && err.message) })); },
);`;

it('passes swagger-parser validation (schema, semantics, every $ref resolved)', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'conduit-openapi-'));
  try {
    const file = path.join(dir, 'openapi.json');
    await fs.writeFile(file, JSON.stringify(doc));
    const { stdout } = await promisify(execFile)(process.execPath, ['-e', VALIDATE, file], { cwd: path.resolve(__dirname, '../..') });
    expect(JSON.parse(stdout)).toEqual({ ok: true, openapi: expect.stringMatching(/^3\./) });
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

it('every $ref points at something the document defines', () => {
  const refs: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) {
        if (k === '$ref' && typeof v === 'string') refs.push(v);
        else walk(v);
      }
    }
  };
  walk(doc);
  expect(refs.length).toBeGreaterThan(10);
  const resolve = (ref: string) =>
    ref
      .replace(/^#\//, '')
      .split('/')
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
      .reduce<any>((node, key) => node?.[key], doc);
  expect(refs.filter((r) => !r.startsWith('#/') || resolve(r) === undefined)).toEqual([]);
  for (const name of ['Connection', 'ConnectionList', 'Error', 'SyncRun', 'TenantCreated'])
    expect(doc.components.schemas[name]).toBeDefined();
});

it('documents every route the app serves, and nothing it does not', () => {
  const served = appRoutes(app)
    .filter(isApiRoute)
    .map((r) => `${r.method} ${r.path}`)
    .sort();
  const documented = Object.entries(doc.paths as Json)
    .flatMap(([p, item]) => Object.keys(item as Json).map((m) => `${m.toUpperCase()} ${p}`))
    .sort();
  expect(served.length).toBeGreaterThanOrEqual(16);
  expect(documented).toEqual(served);
});

/** What each operation must document, from what the route is: authenticated, takes a body, names a connection, acts on it. */
function expectedStatuses(method: string, p: string, op: Json): string[] {
  const statuses = new Set<string>();
  if (p.startsWith('/v1/')) statuses.add('400').add('429');
  if (op.security?.length) statuses.add('401');
  if (['POST', 'PUT', 'PATCH', 'DELETE'].includes(method)) statuses.add('413').add('415');
  if (p.includes('{id}')) statuses.add('404');
  // Invites are rows of our own, never a request to the connection's workflow: refused (409) only when created.
  if (p.startsWith('/v1/connections/{id}/invites')) {
    if (method === 'POST') statuses.add('409');
  } else if (p.startsWith('/v1/connections/{id}') && method !== 'GET') statuses.add('409').add('503');
  // The invite pages (HTML): an unknown link, one that cannot be used any more, too many attempts.
  if (p.startsWith('/invite/')) statuses.add('404').add('410').add('429');
  if (p.startsWith('/invite/') && method === 'POST') statuses.add('400').add('403').add('409');
  if (p === '/v1/connections' && method === 'POST') statuses.add('503');
  if (p.endsWith('/credentials')) statuses.add('422');
  if (p === '/readyz') statuses.add('503');
  return [...statuses].sort();
}

it('every operation documents a success and every error status it can answer, errors as the Error schema', () => {
  const missing: string[] = [];
  for (const [p, item] of Object.entries(doc.paths as Json)) {
    for (const [m, op] of Object.entries(item as Json)) {
      const method = m.toUpperCase();
      const codes = Object.keys(op.responses ?? {});
      if (!codes.some((c) => /^[23]\d\d$/.test(c))) missing.push(`${method} ${p}: no success response`);
      for (const status of expectedStatuses(method, p, op)) if (!codes.includes(status)) missing.push(`${method} ${p}: ${status}`);
      for (const c of codes.filter((code) => /^[45]/.test(code) && p.startsWith('/v1/'))) {
        const schema = op.responses[c].content?.['application/json']?.schema;
        if (schema?.$ref !== '#/components/schemas/Error') missing.push(`${method} ${p}: ${c} is not an Error`);
      }
    }
  }
  expect(missing).toEqual([]);
});

it('the authenticated operations name their security scheme', () => {
  for (const [p, item] of Object.entries(doc.paths as Json)) {
    for (const [m, op] of Object.entries(item as Json)) {
      if (p.startsWith('/v1/connections') || p === '/v1/tenants')
        expect({ op: `${m} ${p}`, security: op.security }).toEqual({
          op: `${m} ${p}`,
          security: [p === '/v1/tenants' ? { adminToken: [] } : { apiKey: [] }],
        });
    }
  }
});

it('bodies that may be left out are documented as optional, the others as required', () => {
  const required = (method: string, p: string) => doc.paths[p][method].requestBody?.required;
  expect(required('post', '/v1/connections/{id}/sync')).toBe(false);
  expect(required('post', '/v1/connections/{id}/pause')).toBe(false);
  expect(required('post', '/v1/connections/{id}/resume')).toBe(false);
  expect(required('post', '/v1/connections')).toBe(true);
  expect(required('put', '/v1/connections/{id}/credentials')).toBe(true);
  expect(required('post', '/v1/tenants')).toBe(true);
  expect(required('post', '/v1/connections/{id}/invites')).toBe(false);
});

it('the invite pages document HTML for every answer but the redirect', () => {
  const wrong: string[] = [];
  for (const [p, item] of Object.entries(doc.paths as Json).filter(([p]) => p.startsWith('/invite/'))) {
    for (const [m, op] of Object.entries(item as Json)) {
      for (const [status, res] of Object.entries((op as Json).responses as Json)) {
        const types = Object.keys((res as Json).content ?? {});
        if (status === '302' ? types.length !== 0 : types.join() !== 'text/html') wrong.push(`${m} ${p} ${status}: ${types.join()}`);
      }
    }
  }
  expect(wrong).toEqual([]);
  expect(Object.keys(doc.paths).filter((p) => p.startsWith('/invite/'))).toHaveLength(3);
});

it('no query the OAuth callback documents can outgrow Node’s 16 KiB header limit (a bodiless 431)', () => {
  // Worst case: every parameter at its maxLength in astral characters (2 UTF-16 units, 12 bytes percent-encoded).
  const params = doc.paths['/v1/oauth/callback'].get.parameters as Json[];
  const worst = params.reduce((sum, p) => {
    const s = p.schema.anyOf ? p.schema.anyOf.find((x: Json) => x.type === 'array') : p.schema;
    const maxLength: number = (s.type === 'array' ? s.items.maxLength : s.maxLength) ?? Infinity;
    const copies: number = s.type === 'array' ? (s.maxItems ?? Infinity) : 1;
    return sum + copies * (p.name.length + 2 + maxLength * 6);
  }, 0);
  expect(worst).toBeLessThan(16 * 1024 - 1024);
});
