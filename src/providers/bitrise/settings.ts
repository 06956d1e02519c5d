import type { z } from 'zod';
import { baseUrl, positiveInt } from '../env';

/** The environment variables a Bitrise deployment reads (documented in the README). */
export const bitriseEnv = {
  BITRISE_API_URL: baseUrl.default('https://api.bitrise.io/v0.1'),
  /**
   * Requests per hour per Bitrise token. Bitrise publishes no v0.1 limit; its responses carry
   * X-RateLimit-* headers, which are honoured on top of this pace.
   */
  BITRISE_REQUESTS_PER_HOUR: positiveInt(1, 10_000_000).default(3000),
};

type Env = z.output<z.ZodObject<typeof bitriseEnv>>;

export function bitriseSettings(e: Env) {
  return { apiUrl: e.BITRISE_API_URL, requestsPerHour: e.BITRISE_REQUESTS_PER_HOUR };
}

export type BitriseSettings = ReturnType<typeof bitriseSettings>;
