import type { ProviderAccount } from '../adapter';
import { ProviderError } from '../errors';
import { providerJson, type RequestMeter } from '../http';
import { bitbucketAccountSchema } from './schemas';

/**
 * OAuth tokens go in `Authorization: Bearer` only, never in the query string
 * (https://community.developer.atlassian.com/t/oauth-2-0-and-api-authentication-changes-for-bitbucket-cloud/99003).
 */
export const bitbucketAuthHeaders = (token: string) => ({ authorization: `Bearer ${token}`, accept: 'application/json' });

/** `GET /user`: whose grant this is (https://developer.atlassian.com/cloud/bitbucket/rest/api-group-users/#api-user-get). */
export async function getBitbucketAccount(apiUrl: string, token: string, meter?: RequestMeter): Promise<ProviderAccount> {
  const body = await providerJson<unknown>({ url: `${apiUrl}/user`, headers: bitbucketAuthHeaders(token), meter });
  const user = bitbucketAccountSchema.safeParse(body);
  if (!user.success) throw new ProviderError('transient', 'Bitbucket answered GET /user with an unexpected body');
  return { id: user.data.uuid, name: user.data.display_name ?? (user.data as { username?: string }).username ?? user.data.uuid };
}
