import Fastify, { type FastifyInstance } from 'fastify';
import { registerErrorHandlers } from '../../src/api/errors';

/**
 * The error handler's last line of defence: whatever input slips past a route's validation and is
 * refused by Postgres as an invalid value is a 400 `invalid_request`, never a 500; our own faults
 * stay 500 `internal_error`.
 */

class PostgresError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'PostgresError';
  }
}

let app: FastifyInstance;
let url: string;

beforeAll(async () => {
  app = Fastify();
  registerErrorHandlers(app);
  app.get('/pg/:code', async (req) => {
    throw new PostgresError((req.params as { code: string }).code, 'from postgres');
  });
  app.get('/bug', async () => {
    throw new Error('our fault');
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});

afterAll(async () => {
  await app?.close();
});

const get = async (path: string) => {
  const res = await fetch(`${url}${path}`);
  return { status: res.status, body: (await res.json()) as { error: { code: string; message: string } } };
};

it.each([
  ['22007', 'invalid_datetime_format'],
  ['22008', 'datetime_field_overflow'],
  ['22009', 'invalid_time_zone_displacement_value'],
  ['22P02', 'invalid_text_representation'],
  ['22021', 'character_not_in_repertoire'],
  ['22P05', 'untranslatable_character'],
  ['22001', 'string_data_right_truncation'],
  ['22003', 'numeric_value_out_of_range'],
])('Postgres %s (%s) is 400 invalid_request, without echoing the database message', async (code) => {
  const res = await get(`/pg/${code}`);
  expect(res).toEqual({ status: 400, body: { error: { code: 'invalid_request', message: expect.any(String) } } });
  expect(res.body.error.message).not.toContain('from postgres');
});

it.each(['23505', '40001', '57P01', '42P01'])('Postgres %s stays a 500 internal_error', async (code) => {
  expect((await get(`/pg/${code}`)).body.error.code).toBe('internal_error');
});

it('an unexpected error is a 500 internal_error', async () => {
  expect(await get('/bug')).toEqual({ status: 500, body: { error: { code: 'internal_error', message: expect.any(String) } } });
});

it('a 429 from a plugin (e.g. a rate limiter) is `rate_limited`', async () => {
  const limited = Fastify();
  registerErrorHandlers(limited);
  limited.get('/', async () => {
    throw Object.assign(new Error('Rate limit exceeded, retry in 1 minute'), { statusCode: 429 });
  });
  await limited.listen({ port: 0, host: '127.0.0.1' });
  try {
    const address = limited.server.address();
    const res = await fetch(`http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/`);
    expect(res.status).toBe(429);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('rate_limited');
  } finally {
    await limited.close();
  }
});
