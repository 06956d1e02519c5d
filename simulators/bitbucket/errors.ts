import type { FastifyReply } from 'fastify';
import type { FaultStatus } from '../shared';

/** Provider-shaped failure; the error handler renders it as Bitbucket would. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly plainText = false,
  ) {
    super(message);
  }
}

export function sendApiError(reply: FastifyReply, err: ApiError): FastifyReply {
  if (err.plainText) return reply.code(err.status).type('text/plain; charset=utf-8').send(err.message);
  return reply.code(err.status).send({ type: 'error', error: { message: err.message } });
}

/**
 * 429 is plain text with no Retry-After (observed in https://github.com/MitjaBezensek/SharpBucket/issues/108
 * and https://github.com/jenkinsci/bitbucket-branch-source-plugin/issues/414); 5xx get the JSON error envelope.
 */
export function sendFault(reply: FastifyReply, status: FaultStatus): FastifyReply {
  if (status === 429) return reply.code(429).type('text/plain; charset=utf-8').send('Rate limit for this resource has been exceeded');
  const messages: Record<number, string> = { 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable' };
  return reply.code(status).send({ type: 'error', error: { message: messages[status] ?? 'Error' } });
}
