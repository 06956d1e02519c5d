import type { ProviderAccount } from '../adapter';
import { ProviderError } from '../errors';
import { providerJson, type RequestMeter } from '../http';
import { bitriseData, bitriseUserSchema } from './schemas';

/**
 * Bitrise wants the bare token, `Authorization: <token>` with no `Bearer` prefix
 * (https://docs.bitrise.io/en/bitrise-ci/api/authenticating-with-the-bitrise-api).
 */
export const bitriseAuthHeaders = (token: string) => ({ authorization: token, accept: 'application/json' });

const meSchema = bitriseData(bitriseUserSchema);

/** `GET /me`: whose token this is (https://api-docs.bitrise.io/#/user/user-profile). */
export async function getBitriseAccount(apiUrl: string, token: string, meter?: RequestMeter): Promise<ProviderAccount> {
  const body = meSchema.safeParse(await providerJson<unknown>({ url: `${apiUrl}/me`, headers: bitriseAuthHeaders(token), meter }));
  if (!body.success) throw new ProviderError('transient', 'Bitrise answered GET /me with an unexpected body');
  const me = body.data.data;
  return { id: me.slug, name: me.username ?? me.slug };
}
