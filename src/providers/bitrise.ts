import { providerJson, type RequestMeter } from './http';

/** Bitrise API v0.1 (see ../shared/provider-notes.md §B). */

export interface BitriseAccount {
  id: string;
  name: string;
}

/** Bitrise wants the bare token: `Authorization: <token>`, no `Bearer` prefix. */
export const bitriseAuthHeader = (token: string) => ({ authorization: token, accept: 'application/json' });

export function createBitriseClient(urls: { apiUrl: string }, meter?: RequestMeter) {
  return {
    async getAccount(token: string): Promise<BitriseAccount> {
      const me = await providerJson<{ data: { slug: string; username?: string | null } }>({
        url: `${urls.apiUrl}/me`,
        headers: bitriseAuthHeader(token),
        meter,
      });
      return { id: me.data.slug, name: me.data.username ?? me.data.slug };
    },
  };
}

export type BitriseClient = ReturnType<typeof createBitriseClient>;
