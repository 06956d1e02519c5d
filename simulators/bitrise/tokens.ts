import { type SecretRegistry, SimNotFoundError, randomSecret } from '../shared';

/**
 * The access tokens the simulator accepts. Bitrise v0.1 takes a personal access token
 * (https://docs.bitrise.io/en/bitrise-platform/accounts/personal-access-tokens) or a workspace API
 * token, which works "the exact same way" (https://docs.bitrise.io/en/bitrise-platform/workspaces/workspace-api-token.html),
 * sent raw in `Authorization` (https://docs.bitrise.io/en/bitrise-ci/api/authenticating-with-the-bitrise-api).
 */

export type TokenKind = 'personal' | 'workspace';

interface TokenInfo {
  label: string;
  kind: TokenKind;
  revoked: boolean;
}

export class TokenStore {
  private readonly tokens = new Map<string, TokenInfo>();

  constructor(
    private readonly secrets: SecretRegistry,
    seeded: readonly string[] = [],
  ) {
    for (const t of seeded) this.add(t, 'seeded', t.startsWith('bitwat_') ? 'workspace' : 'personal');
  }

  create({ label = 'token', kind = 'personal' }: { label?: string; kind?: TokenKind } = {}): string {
    // PATs look like long URL-safe random strings; workspace tokens carry the `bitwat_` prefix
    // secret scanners key on (https://docs.gitguardian.com/secrets-detection/secrets-detection-engine/detectors/specifics/bitrise_workspace_api_token).
    const token =
      kind === 'workspace'
        ? `bitwat_${randomSecret(64)}`
        : randomSecret(86, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_');
    return this.add(token, label, kind);
  }

  revoke(token: string): void {
    const info = this.tokens.get(token);
    if (!info) throw new SimNotFoundError('unknown token');
    info.revoked = true;
  }

  /** True when `presented` (the whole `Authorization` value) is a token issued here and not revoked. */
  accepts(presented: string | undefined): boolean {
    const info = presented ? this.tokens.get(presented) : undefined;
    return info !== undefined && !info.revoked;
  }

  private add(token: string, label: string, kind: TokenKind): string {
    this.tokens.set(this.secrets.add(token), { label, kind, revoked: false });
    return token;
  }
}
