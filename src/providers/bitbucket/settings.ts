import { type z } from 'zod';
import { baseUrl, optionalString, positiveInt } from '../env';

/** The environment variables a Bitbucket deployment reads (documented in the README). */
export const bitbucketEnv = {
  /** The platform's OAuth consumer; connections may bring their own instead. */
  BITBUCKET_CLIENT_ID: optionalString,
  BITBUCKET_CLIENT_SECRET: optionalString,
  BITBUCKET_API_URL: baseUrl.default('https://api.bitbucket.org/2.0'),
  BITBUCKET_OAUTH_URL: baseUrl.default('https://bitbucket.org/site/oauth2'),
  /**
   * Requests per hour one OAuth consumer may make, across all its connections and workers.
   * Bitbucket allows about 1,000 (https://support.atlassian.com/bitbucket-cloud/docs/api-request-limits/);
   * staying below it means a large backfill finishes without a storm of 429s.
   */
  BITBUCKET_REQUESTS_PER_HOUR: positiveInt(1, 10_000_000).default(900),
  /**
   * How long a refresh token Bitbucket has rotated out keeps working: it "will expire shortly after"
   * the rotation (https://community.developer.atlassian.com/t/oauth-2-0-and-api-authentication-changes-for-bitbucket-cloud/99003),
   * with no number given. Within this window after a refresh whose new pair may have been lost
   * (a crash or failed save), Conduit retries with the stored token and a refusal never parks.
   */
  BITBUCKET_REFRESH_GRACE_SECONDS: positiveInt(0, 86_400).default(120),
};

type Env = z.output<z.ZodObject<typeof bitbucketEnv>>;

export function checkBitbucketEnv(e: Env, ctx: z.RefinementCtx): void {
  if (Boolean(e.BITBUCKET_CLIENT_ID) !== Boolean(e.BITBUCKET_CLIENT_SECRET)) {
    ctx.addIssue({
      code: 'custom',
      path: ['BITBUCKET_CLIENT_SECRET'],
      message: 'BITBUCKET_CLIENT_ID and BITBUCKET_CLIENT_SECRET must be set together',
    });
  }
}

export function bitbucketSettings(e: Env) {
  const { BITBUCKET_CLIENT_ID: clientId, BITBUCKET_CLIENT_SECRET: clientSecret } = e;
  return {
    apiUrl: e.BITBUCKET_API_URL,
    oauthUrl: e.BITBUCKET_OAUTH_URL,
    platformOAuthClient: clientId && clientSecret ? { clientId, clientSecret } : undefined,
    requestsPerHour: e.BITBUCKET_REQUESTS_PER_HOUR,
    refreshGraceMs: e.BITBUCKET_REFRESH_GRACE_SECONDS * 1000,
  };
}

export type BitbucketSettings = ReturnType<typeof bitbucketSettings>;
