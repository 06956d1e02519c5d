import type { FastifyReply } from 'fastify';
import type { FaultStatus } from '../shared';

/** Provider-shaped failure; the error handler renders it as Bitrise would. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Errors are `{"message": …}`, the `service.StandardErrorRespModel` the spec maps its 4xx and 5xx
 * responses to (https://api-docs.bitrise.io/docs/swagger.json).
 */
export function sendError(reply: FastifyReply, status: number, message: string): FastifyReply {
  return reply.code(status).send({ message });
}

/**
 * v0.1 publishes no rate-limit response, so this is the 429 the Insights API documents: plain text
 * plus `Retry-After` (https://docs.bitrise.io/en/insights-api/api-reference/bitrise-insights-api).
 */
export function sendRateLimited(reply: FastifyReply, retryAfterSeconds: number): FastifyReply {
  return reply.code(429).header('retry-after', String(retryAfterSeconds)).type('text/plain; charset=utf-8').send('Too Many Requests');
}

/** An injected fault answers as the API would: the 429 above, or a 5xx with the JSON error body. */
export function sendFault(reply: FastifyReply, status: FaultStatus): FastifyReply {
  if (status === 429) return sendRateLimited(reply, 1);
  const messages: Record<number, string> = { 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable' };
  return sendError(reply, status, messages[status] ?? 'Error');
}
