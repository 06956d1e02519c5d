import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { isTemporalUnavailable } from '../temporal/start-connection';

/**
 * Every error leaves as `{"error":{"code","message"}}`. Codes are stable snake_case strings that
 * product UIs branch on; messages are for people and may change.
 */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const notFound = (what = 'Resource') => new ApiError(404, 'not_found', `${what} not found.`);
export const badRequest = (code: string, message: string) => new ApiError(400, code, message);
export const conflict = (code: string, message: string) => new ApiError(409, code, message);

export const temporalUnavailable = (message = 'Temporal, which runs connections, is unreachable right now; try again shortly.') =>
  new ApiError(503, 'temporal_unavailable', message);

export const errorBody = (code: string, message: string) => ({ error: { code, message } });

/** Fastify's own error codes for request problems, mapped onto ours. */
const FASTIFY_CODES: Record<string, { status: number; code: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'invalid_json' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'invalid_json' },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'payload_too_large' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'unsupported_media_type' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'invalid_request' },
  FST_ERR_VALIDATION: { status: 400, code: 'invalid_request' },
};

/**
 * Postgres SQLSTATEs that mean "this input is not a valid value" (class 22, data exception): bad
 * datetime syntax or field values, bad text representation, NUL or untranslatable characters,
 * numbers out of range, over-long strings. Routes validate their input before it reaches SQL; these
 * are the last line of defence, so that a gap there is a 400, never a 500.
 */
const PG_INVALID_INPUT = new Set([
  '22001', // string_data_right_truncation
  '22003', // numeric_value_out_of_range
  '22007', // invalid_datetime_format
  '22008', // datetime_field_overflow
  '22009', // invalid_time_zone_displacement_value
  '22021', // character_not_in_repertoire (NUL in text)
  '22P02', // invalid_text_representation (uuid, integer, …)
  '22P05', // untranslatable_character (\u0000 in jsonb)
]);

const isPostgresInputError = (err: { name?: string; code?: unknown }) =>
  err.name === 'PostgresError' && typeof err.code === 'string' && PG_INVALID_INPUT.has(err.code);

/** What an error answers, as status, stable code and message (logged here when it is ours). */
export interface ErrorAnswer {
  statusCode: number;
  code: string;
  message: string;
}

/**
 * Maps any error a route throws onto the answer the caller gets: the JSON handler below and the
 * invite pages' HTML handler render the same answers.
 */
export function errorAnswer(err: FastifyError, req: FastifyRequest): ErrorAnswer {
  const answer = (statusCode: number, code: string, message: string) => ({ statusCode, code, message });
  if (err instanceof ApiError) return answer(err.statusCode, err.code, err.message);
  // Any Temporal call a route makes that meets gRPC UNAVAILABLE / DEADLINE_EXCEEDED: ours, not a bug.
  if (isTemporalUnavailable(err)) {
    req.log.warn({ err: { message: err.message }, route: req.routeOptions.url }, 'temporal unavailable');
    const e = temporalUnavailable();
    return answer(e.statusCode, e.code, e.message);
  }

  if (hasZodFastifySchemaValidationErrors(err)) {
    const issues = err.validation.map((v) => {
      const field = v.instancePath.replace(/^\//, '').replace(/\//g, '.');
      return field ? `${field}: ${v.message}` : String(v.message);
    });
    return answer(400, 'invalid_request', `Invalid ${err.validationContext ?? 'request'}: ${issues.join('; ')}`);
  }

  if (isPostgresInputError(err)) {
    req.log.warn({ sqlstate: err.code, method: req.method, route: req.routeOptions.url }, 'input refused by Postgres');
    return answer(400, 'invalid_request', 'A value in the request is not valid.');
  }

  const mapped = err.code ? FASTIFY_CODES[err.code] : undefined;
  if (mapped) return answer(mapped.status, mapped.code, err.message);

  if (!isResponseSerializationError(err) && err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
    return answer(err.statusCode, err.statusCode === 429 ? 'rate_limited' : 'invalid_request', err.message);
  }

  req.log.error({ err, method: req.method, route: req.routeOptions.url }, 'unhandled error');
  return answer(500, 'internal_error', 'Something went wrong on our side. It has been logged.');
}

export function registerErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const { statusCode, code, message } = errorAnswer(err, req);
    return reply.code(statusCode).send(errorBody(code, message));
  });

  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send(errorBody('route_not_found', `No route for ${req.method} ${req.url.split('?')[0]}.`));
  });
}
