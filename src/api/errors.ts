import type { FastifyError, FastifyInstance } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';

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

export function registerErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof ApiError) return reply.code(err.statusCode).send(errorBody(err.code, err.message));

    if (hasZodFastifySchemaValidationErrors(err)) {
      const issues = err.validation.map((v) => {
        const field = v.instancePath.replace(/^\//, '').replace(/\//g, '.');
        return field ? `${field}: ${v.message}` : String(v.message);
      });
      return reply.code(400).send(errorBody('invalid_request', `Invalid ${err.validationContext ?? 'request'}: ${issues.join('; ')}`));
    }

    const mapped = err.code ? FASTIFY_CODES[err.code] : undefined;
    if (mapped) return reply.code(mapped.status).send(errorBody(mapped.code, err.message));

    if (!isResponseSerializationError(err) && err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.code(err.statusCode).send(errorBody('invalid_request', err.message));
    }

    req.log.error({ err, method: req.method, route: req.routeOptions.url }, 'unhandled error');
    return reply.code(500).send(errorBody('internal_error', 'Something went wrong on our side. It has been logged.'));
  });

  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send(errorBody('route_not_found', `No route for ${req.method} ${req.url.split('?')[0]}.`));
  });
}
