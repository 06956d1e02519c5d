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

export interface LogSettings {
  level: string;
  /**
   * One readable line per event (pino-pretty, a development dependency) instead of JSON lines.
   * `npm start` turns it on; production keeps JSON for the log pipeline.
   */
  pretty?: boolean;
}

export function createLogger(settings: LogSettings, service: string, destination?: pino.DestinationStream): Logger {
  const options = loggerOptions(settings.level, service);
  if (destination) return pino(options, destination);
  if (settings.pretty)
    return pino({
      ...options,
      transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname', singleLine: true } },
    });
  return pino(options);
}

export type { Logger };
