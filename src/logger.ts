import pino, { type Logger, type LoggerOptions } from 'pino';

/**
 * Log options shared by the api and the worker. Secrets reach us in headers, bodies and the OAuth
 * callback's query string; none of those is logged: headers that carry credentials are redacted
 * and request URLs are logged without their query string.
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  '*.token',
  '*.accessToken',
  '*.refreshToken',
  '*.clientSecret',
  '*.apiKey',
  '*.code',
];

export function loggerOptions(level: string, service: string): LoggerOptions {
  return {
    level,
    base: { service },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
}

export function createLogger(level: string, service: string, destination?: pino.DestinationStream): Logger {
  return destination ? pino(loggerOptions(level, service), destination) : pino(loggerOptions(level, service));
}

export type { Logger };
