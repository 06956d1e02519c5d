import { MANIFESTS, type Provider } from '../../src/providers/manifests';
import { completeOAuth, startStack, waitFor, waitForStatus, type ApiResponse, type Stack } from '../helpers/stack';

/**
 * Security properties of every route, table-driven from the app's own `/openapi.json`, so a route
 * added later is covered without touching this file:
 *
 * - tenant isolation: an attacker tenant trying each of a victim's ids, resources and cursors gets
 *   404 (never the victim's data, never a change to it);
 * - SQL-injection-shaped input in every path and query parameter and every string body field is a
 *   4xx (or stored verbatim, where any text is valid), never a 5xx, and changes nothing;
 * - authentication happens before the body is read: no key + an oversized or non-JSON body is 401;
 * - oversized bodies are 413 and bodies of the wrong content type 415;
 * - malformed cursors and instants are 400, never a database error.
 */

type Json = Record<string, any>;
interface Operation {
  method: string;
  path: string;
  op: Json;
}

let stack: Stack;
let victim: { id: string; apiKey: string };
let attacker: { id: string; apiKey: string };
let doc: Json;
let operations: Operation[];
/** The victim's active connection of each provider. */
const victimConnections: Record<Provider, string> = { bitrise: '', bitbucket: '' };
/** Cursors the API handed the victim: its connections list and each resource's records. */
const victimCursors: { list: string; records: Record<string, string> } = { list: '', records: {} };
/** Everything of the victim's that must never reach the attacker: connection ids, record ids, run ids. */
const victimSecrets: string[] = [];
/** The attacker's own connections, for routes that need one to get past the 404. */
const attackerConnections: Record<Provider, string> = { bitrise: '', bitbucket: '' };

const as = (apiKey: string) => ({ apiKey });

beforeAll(async () => {
  stack = await startStack();
  victim = await stack.createTenant('Victim');
  attacker = await stack.createTenant('Attacker');
  doc = (await stack.request('GET', '/openapi.json')).body;
  operations = Object.entries(doc.paths as Json).flatMap(([path, item]) =>
    Object.entries(item as Json).map(([m, op]) => ({ method: m.toUpperCase(), path, op: op as Json })),
  );

  // The victim: one active connection of each provider, synced once, with a spare one so lists page.
  for (const provider of ['bitrise', 'bitbucket', 'bitrise'] as const) {
    const created = await stack.request('POST', '/v1/connections', { ...as(victim.apiKey), body: { provider } });
    expect(created.status).toBe(201);
    if (!victimConnections[provider]) victimConnections[provider] = created.body.id;
  }
  await stack.request('PUT', `/v1/connections/${victimConnections.bitrise}/credentials`, {
    ...as(victim.apiKey),
    body: { token: stack.bitrise.control.createToken() },
  });
  await completeOAuth(stack, victim.apiKey, victimConnections.bitbucket);
  for (const [provider, id] of Object.entries(victimConnections) as [Provider, string][]) {
    await waitForStatus(stack, victim.apiKey, id, 'active', 60_000);
    await waitFor(
      async () =>
        ((await stack.request('GET', `/v1/connections/${id}/runs`, as(victim.apiKey))).body.items ?? []).some(
          (r: any) => r.status === 'succeeded',
        ),
      90_000,
      `the first ${provider} sync`,
    );
    victimSecrets.push(id);
    for (const run of (await stack.request('GET', `/v1/connections/${id}/runs`, as(victim.apiKey))).body.items) victimSecrets.push(run.id);
    for (const resource of MANIFESTS[provider].resources) {
      const page = await stack.request('GET', `/v1/connections/${id}/records/${resource}?limit=1`, as(victim.apiKey));
      expect(page.status).toBe(200);
      if (page.body.nextCursor) victimCursors.records[`${provider}/${resource}`] = page.body.nextCursor;
      // Provider ids short enough to be ambiguous (a "1") would match anything: only distinctive ones.
      for (const item of page.body.items) if (String(item.id).length >= 8) victimSecrets.push(String(item.id));
    }
  }
  const list = await stack.request('GET', '/v1/connections?limit=1', as(victim.apiKey));
  victimCursors.list = list.body.nextCursor;
  expect(victimCursors.list).toBeTruthy();
  expect(Object.keys(victimCursors.records).length).toBeGreaterThan(3);

  for (const provider of ['bitrise', 'bitbucket'] as const) {
    attackerConnections[provider] = (
      await stack.request('POST', '/v1/connections', { ...as(attacker.apiKey), body: { provider } })
    ).body.id;
  }
}, 240_000);

afterAll(async () => {
  await stack?.stop();
});

// -------------------------------------------------------------------------------------------------
// helpers

const authenticated = (o: Operation) => (o.op.security ?? []).length > 0;
const isAdmin = (o: Operation) => (o.op.security ?? []).some((s: Json) => 'adminToken' in s);
const takesBody = (o: Operation) => ['POST', 'PUT', 'PATCH', 'DELETE'].includes(o.method);
const resolve = (schema: Json | undefined): Json | undefined =>
  schema?.$ref ? resolve(doc.components.schemas[String(schema.$ref).split('/').pop()!]) : schema;
const requestSchema = (o: Operation) => resolve(o.op.requestBody?.content?.['application/json']?.schema);

/** The smallest body the operation's schema accepts (undefined when the body is optional). */
function minimalBody(o: Operation): unknown {
  const schema = requestSchema(o);
  if (!schema || schema.nullable) return undefined;
  const build = (s: Json): unknown => {
    s = resolve(s)!;
    if (s.enum) return s.enum[0];
    if (s.type === 'string') return 'x'.repeat(s.minLength ?? 1);
    if (s.type === 'integer' || s.type === 'number') return s.minimum ?? 0;
    if (s.type === 'boolean') return false;
    if (s.type === 'array') return [];
    if (s.type === 'object') return Object.fromEntries((s.required ?? []).map((k: string) => [k, build(s.properties[k])]));
    return null;
  };
  return build(schema);
}

/** Every string field of a body schema, as a path of keys (array items as `[]`). */
function stringFields(schema: Json | undefined, prefix: string[] = []): string[][] {
  schema = resolve(schema);
  if (!schema) return [];
  if (schema.type === 'string' && !schema.enum) return [prefix];
  if (schema.type === 'array') return stringFields(schema.items, [...prefix, '[]']);
  if (schema.type === 'object') return Object.entries(schema.properties ?? {}).flatMap(([k, v]) => stringFields(v as Json, [...prefix, k]));
  return [];
}

function setField(body: Json, path: string[], value: string): Json {
  const copy = structuredClone(body ?? {});
  let node: any = copy;
  path.forEach((key, i) => {
    const last = i === path.length - 1;
    if (key === '[]') return;
    const next = path[i + 1];
    if (last) node[key] = value;
    else if (next === '[]') {
      node[key] = [value];
      node = null;
    } else node = node[key] ??= {};
    if (node === null) path.length = 0;
  });
  return copy;
}

/** A stream (text/event-stream) is asked to end once it has sent what is stored, so reading its body finishes. */
const bounded = (o: Operation, url: string) =>
  o.op.responses?.['200']?.content?.['text/event-stream'] ? `${url}${url.includes('?') ? '&' : '?'}maxSeconds=0` : url;

function fill(path: string, params: Record<string, string>): string {
  return path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(params[name] ?? 'x'));
}

const tableCounts = async () => {
  const tables = await stack.sql<{ tableName: string }[]>`
    select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE' order by 1`;
  const counts: Record<string, number> = {};
  for (const { tableName } of tables) counts[tableName] = (await stack.sql`select count(*)::int as n from ${stack.sql(tableName)}`)[0]!.n;
  // A token the provider refuses is kept as a retired, wiped row (the vault's audit trail): not a change of state.
  counts.credentials = (await stack.sql`select count(*)::int as n from credentials where state <> 'retired'`)[0]!.n;
  return counts;
};

const victimState = async () => ({
  connections: await stack.sql`select * from connections where tenant_id = ${victim.id} order by id`,
  credentials: await stack.sql`
    select c.id, c.state, c.version from credentials c join connections k on k.id = c.connection_id
    where k.tenant_id = ${victim.id} order by c.id`,
  runs: await stack.sql`select count(*)::int as n from sync_runs r join connections k on k.id = r.connection_id where k.tenant_id = ${victim.id}`,
});

function leaked(res: ApiResponse): string[] {
  const text = typeof res.body === 'string' ? res.body : JSON.stringify(res.body);
  const location = res.headers.get('location') ?? '';
  return victimSecrets.filter((s) => text.includes(s) || location.includes(s));
}

// -------------------------------------------------------------------------------------------------

it('the table covers every operation of the document', () => {
  expect(operations.length).toBeGreaterThanOrEqual(16);
  expect(operations.filter((o) => o.path.includes('{id}')).length).toBeGreaterThanOrEqual(9);
});

describe('tenant isolation', () => {
  it("an attacker trying every victim id, resource and cursor on every route gets 404 and nothing of the victim's", async () => {
    const before = await victimState();
    const problems: string[] = [];
    let tried = 0;
    for (const o of operations) {
      if (!authenticated(o) || isAdmin(o)) continue;
      const attempts: { url: string; expectNotFound: boolean }[] = [];
      const hasId = o.path.includes('{id}');
      const queryNames = (o.op.parameters ?? []).filter((p: Json) => p.in === 'query').map((p: Json) => p.name as string);
      for (const [provider, id] of hasId ? (Object.entries(victimConnections) as [Provider, string][]) : [['bitrise', ''] as const]) {
        const resources = o.path.includes('{resource}') ? MANIFESTS[provider].resources : ['-'];
        for (const resource of resources) {
          const base = fill(o.path, { id, resource });
          attempts.push({ url: base, expectNotFound: hasId });
          if (queryNames.includes('cursor')) {
            const cursors = o.path.includes('/records/') ? Object.values(victimCursors.records) : [victimCursors.list];
            for (const cursor of cursors) attempts.push({ url: `${base}?cursor=${encodeURIComponent(cursor)}`, expectNotFound: hasId });
          }
        }
      }
      for (const { url, expectNotFound } of attempts) {
        tried++;
        const res = await stack.request(o.method, bounded(o, url), { ...as(attacker.apiKey), body: minimalBody(o) });
        const label = `${o.method} ${url}`;
        if (expectNotFound && (res.status !== 404 || res.body?.error?.code !== 'not_found')) problems.push(`${label}: ${res.status}`);
        if (!expectNotFound && res.status >= 500) problems.push(`${label}: ${res.status}`);
        const leaks = leaked(res);
        if (leaks.length) problems.push(`${label}: leaked ${leaks.join(', ')}`);
      }
    }
    expect(problems).toEqual([]);
    expect(tried).toBeGreaterThan(40);
    expect(await victimState()).toEqual(before);
  });

  it("the attacker's own list never shows the victim's connections, whatever the cursor", async () => {
    const own = await stack.request('GET', `/v1/connections?limit=100&cursor=${victimCursors.list}`, as(attacker.apiKey));
    expect(own.status).toBe(200);
    expect(own.body.items.every((c: any) => Object.values(attackerConnections).includes(c.id))).toBe(true);
  });
});

describe('SQL-injection-shaped input', () => {
  const PAYLOADS = [
    "' OR '1'='1",
    "1' OR 1=1--",
    "'; DROP TABLE connections;--",
    '1);delete/**/from/**/tenants;--',
    "' UNION SELECT id, api_key_hash FROM tenants--",
    "'||pg_sleep(5)||'",
    '$1',
    '\\',
    '%27%20OR%201%3D1',
    '\u0000',
  ];

  it('in every path parameter, query parameter and string body field is never a 5xx and changes nothing it should not', async () => {
    const problems: string[] = [];
    let tried = 0;
    for (const o of operations) {
      const apiKey = isAdmin(o) ? stack.env.ADMIN_TOKEN! : attacker.apiKey;
      const pathParams = (o.op.parameters ?? []).filter((p: Json) => p.in === 'path').map((p: Json) => p.name as string);
      const queryParams = (o.op.parameters ?? []).filter((p: Json) => p.in === 'query').map((p: Json) => p.name as string);
      const fields = stringFields(requestSchema(o));
      const valid = { id: attackerConnections.bitrise, resource: 'builds' };
      const cases: { url: string; body: unknown }[] = [];
      for (const payload of PAYLOADS) {
        for (const name of pathParams) cases.push({ url: fill(o.path, { ...valid, [name]: payload }), body: minimalBody(o) });
        for (const name of queryParams) {
          cases.push({ url: `${fill(o.path, valid)}?${name}=${encodeURIComponent(payload)}`, body: minimalBody(o) });
        }
        for (const field of fields)
          cases.push({ url: fill(o.path, valid), body: setField((minimalBody(o) as Json) ?? {}, field, payload) });
      }
      for (const c of cases) {
        tried++;
        const before = await tableCounts();
        const res = await stack.request(o.method, bounded(o, c.url), { headers: { authorization: `Bearer ${apiKey}` }, body: c.body });
        const label = `${o.method} ${c.url} ${JSON.stringify(c.body) ?? ''}`;
        if (res.status >= 500) problems.push(`${label}: ${res.status} ${JSON.stringify(res.body)}`);
        if (res.status >= 400 && JSON.stringify(await tableCounts()) !== JSON.stringify(before))
          problems.push(`${label}: ${res.status} changed rows`);
        if (leaked(res).length) problems.push(`${label}: leaked`);
      }
    }
    expect(problems).toEqual([]);
    expect(tried).toBeGreaterThan(200);
    // Nothing was dropped or emptied, and the victim is untouched.
    const counts = await tableCounts();
    expect(counts.tenants).toBeGreaterThanOrEqual(2);
    expect(counts.connections).toBeGreaterThanOrEqual(5);
    expect((await stack.request('GET', '/v1/connections', as(victim.apiKey))).body.items).toHaveLength(3);
  });

  it('text that is valid anywhere is stored verbatim, not interpreted', async () => {
    const name = "Robert'); DROP TABLE connections;--";
    const res = await stack.request('POST', '/v1/connections', { ...as(attacker.apiKey), body: { provider: 'bitrise', name } });
    expect(res.status).toBe(201);
    expect((await stack.request('GET', `/v1/connections/${res.body.id}`, as(attacker.apiKey))).body.name).toBe(name);
  });
});

describe('bodies: authentication first, then size and content type', () => {
  const bodyOps = () => operations.filter((o) => takesBody(o) && authenticated(o));
  const big = JSON.stringify({ name: 'x'.repeat(70 * 1024) });

  it('no API key + an oversized, malformed or non-JSON body is 401 on every route that takes one', async () => {
    const problems: string[] = [];
    for (const o of bodyOps()) {
      const url = fill(o.path, { id: victimConnections.bitrise, resource: 'builds' });
      for (const [what, rawBody, type] of [
        ['oversized', big, 'application/json'],
        ['malformed', '{"provider":', 'application/json'],
        ['invalid', '{"colour":"red"}', 'application/json'],
        ['text/plain', 'hello', 'text/plain'],
      ] as const) {
        const res = await stack.request(o.method, url, { rawBody, headers: { 'content-type': type } });
        if (res.status !== 401 || res.body?.error?.code !== 'unauthorized') problems.push(`${o.method} ${o.path} ${what}: ${res.status}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('an oversized body is 413 and a body of the wrong content type 415, on every route that takes a body', async () => {
    const problems: string[] = [];
    for (const o of bodyOps()) {
      const apiKey = isAdmin(o) ? stack.env.ADMIN_TOKEN! : attacker.apiKey;
      const url = fill(o.path, { id: attackerConnections.bitrise, resource: 'builds' });
      const before = await tableCounts();
      for (const [rawBody, type, status, code] of [
        [big, 'application/json', 413, 'payload_too_large'],
        ['provider=bitrise', 'application/x-www-form-urlencoded', 415, 'unsupported_media_type'],
        ['{"provider":"bitrise"}', 'text/plain', 415, 'unsupported_media_type'],
        ['<provider>bitrise</provider>', 'application/xml', 415, 'unsupported_media_type'],
      ] as const) {
        const res = await stack.request(o.method, url, { rawBody, headers: { authorization: `Bearer ${apiKey}`, 'content-type': type } });
        if (res.status !== status || res.body?.error?.code !== code)
          problems.push(`${o.method} ${o.path} ${type}: ${res.status} (want ${status})`);
      }
      if (JSON.stringify(await tableCounts()) !== JSON.stringify(before)) problems.push(`${o.method} ${o.path}: changed rows`);
    }
    expect(problems).toEqual([]);
  });
});

describe('malformed cursors and instants are 400, never a database error', () => {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const records = () => `/v1/connections/${victimConnections.bitrise}/records/builds`;
  const get = (url: string) => stack.request('GET', url, as(victim.apiKey));

  it.each([
    ['the reported cursor {"u":"x","i":"y"}', 'eyJ1IjoieCIsImkiOiJ5In0'],
    ['a month 13', b64({ u: '2024-13-01T00:00:00.000000Z', i: 'y' })],
    ['February 30th', b64({ u: '2024-02-30T00:00:00.000000Z', i: 'y' })],
    ['hour 24', b64({ u: '2024-01-01T24:00:00.000000Z', i: 'y' })],
    ['year 0', b64({ u: '0000-01-01T00:00:00.000000Z', i: 'y' })],
    ['an offset instead of Z', b64({ u: '2024-01-01T00:00:00.000000+01:00', i: 'y' })],
    ['a NUL in the id', b64({ u: '2024-01-01T00:00:00.000000Z', i: 'a\u0000b' })],
    ['extra fields', b64({ u: '2024-01-01T00:00:00.000000Z', i: 'y', x: 1 })],
    ['a number id', b64({ u: '2024-01-01T00:00:00.000000Z', i: 1 })],
    ['not JSON', 'bm90IGpzb24'],
  ])('records cursor: %s', async (_what, cursor) => {
    const res = await get(`${records()}?cursor=${cursor}`);
    expect({ status: res.status, code: res.body.error?.code }).toEqual({ status: 400, code: 'invalid_cursor' });
  });

  it.each([
    ['the reported cursor', 'eyJ1IjoieCIsImkiOiJ5In0'],
    ['a bad instant', b64({ c: '2024-13-01T00:00:00.000000Z', i: '00000000-0000-4000-8000-000000000000' })],
    ['a bad uuid', b64({ c: '2024-01-01T00:00:00.000000Z', i: 'not-a-uuid' })],
    ['an offset', b64({ c: '2024-01-01T00:00:00+23:59', i: '00000000-0000-4000-8000-000000000000' })],
  ])('connections cursor: %s', async (_what, cursor) => {
    const res = await get(`/v1/connections?cursor=${cursor}`);
    expect({ status: res.status, code: res.body.error?.code }).toEqual({ status: 400, code: 'invalid_cursor' });
  });

  it('a cursor the API wrote still pages', async () => {
    const res = await get(`${records()}?limit=1&cursor=${victimCursors.records['bitrise/builds']}`);
    expect(res.status).toBe(200);
  });

  it.each([
    '2024-01-01T00:00:00+23:59',
    '2024-01-01T00:00:00+14:01',
    '2024-01-01T00:00:00-15:00',
    '2024-02-30T00:00:00Z',
    '2024-01-01T24:00:00Z',
    '0000-01-01T00:00:00Z',
    '2024-01-01T00:00:60Z',
    '2024-01-01',
  ])('updatedSince=%s is 400', async (since) => {
    const res = await get(`${records()}?updatedSince=${encodeURIComponent(since)}`);
    expect({ status: res.status, code: res.body.error?.code }).toEqual({ status: 400, code: 'invalid_request' });
  });

  it.each([
    '2024-01-01T00:00:00+14:00',
    '2024-01-01T00:00:00-14:00',
    '2024-01-01T00:00:00.123456Z',
    '2024-02-29T23:59:59+05:30',
    '0001-01-01T00:00:00Z',
    '9999-12-31T23:59:59-14:00',
  ])('updatedSince=%s is accepted', async (since) => {
    expect((await get(`${records()}?updatedSince=${encodeURIComponent(since)}`)).status).toBe(200);
  });

  it.each([
    ['a NUL in a tenant name', 'POST', '/v1/tenants', { name: 'a\u0000b' }, true],
    ['a NUL in a connection name', 'POST', '/v1/connections', { provider: 'bitrise', name: 'a\u0000b' }, false],
    [
      'a control character in returnUrl',
      'POST',
      '/v1/connections',
      { provider: 'bitbucket', returnUrl: 'https://a.example/\u0000' },
      false,
    ],
    [
      'a NUL in a consumer key',
      'POST',
      '/v1/connections',
      { provider: 'bitbucket', oauthClient: { clientId: 'a\u0000', clientSecret: 's' } },
      false,
    ],
  ])('%s is 400', async (_what, method, url, body, admin) => {
    const res = await stack.request(method, url, {
      headers: { authorization: `Bearer ${admin ? stack.env.ADMIN_TOKEN : victim.apiKey}` },
      body,
    });
    expect({ status: res.status, code: res.body.error?.code }).toEqual({ status: 400, code: 'invalid_request' });
  });

  it('the OAuth callback at its documented maximum is a 400 from the app, not a bodiless 431 from Node', async () => {
    const astral = (units: number) => '\u{1D4B3}'.repeat(units / 2);
    const q = new URLSearchParams({ code: astral(512), error_description: astral(500) });
    for (let i = 0; i < 4; i++) q.append('state', astral(200));
    const res = await stack.request('GET', `/v1/oauth/callback?${q.toString()}`);
    expect({ status: res.status, code: res.body?.error?.code }).toEqual({ status: 400, code: 'invalid_state' });
    q.set('error_description', astral(502));
    expect((await stack.request('GET', `/v1/oauth/callback?${q.toString()}`)).status).toBe(400);
  });

  it('a token that could not travel in a header is 400, not a provider round trip', async () => {
    for (const token of ['tök€n', 'a b', 'line\nbreak']) {
      const res = await stack.request('PUT', `/v1/connections/${attackerConnections.bitrise}/credentials`, {
        ...as(attacker.apiKey),
        body: { token },
      });
      expect({ token, status: res.status }).toEqual({ token, status: 400 });
    }
  });
});
