/**
 * What the rest of Conduit may know about a provider without loading its code: pure data, safe to
 * import from workflow code. Everything that talks to the provider lives in its adapter.
 */
export interface ProviderManifest {
  id: string;
  /** For messages people read ("Bitbucket rejected the credential"). */
  displayName: string;
  /**
   * How a customer grants access: an OAuth 2.0 round trip (`POST /authorize`, refreshable tokens)
   * or a token pasted into `PUT /credentials`.
   */
  auth: 'oauth2' | 'token';
  /** Stored with each credential and bound into its ciphertext's associated data: never rename. */
  credentialKind: string;
  /**
   * What it syncs, in dependency order (parents before children). Every run begins with the
   * `account` step: one cheap request that proves access before the heavy ones.
   */
  resources: readonly string[];
  /**
   * What the provider's admin is told before granting access (the invite page): plain words, no
   * markup (the page escapes it).
   */
  consent: {
    /** The access asked for, one item each; all of it read-only. */
    access: readonly string[];
    /** What is synced, as a phrase ("repositories, pull requests and …"). */
    synced: string;
    /** Token providers: where an admin creates a token, each way with the provider's own docs. */
    tokenHelp?: readonly { kind: string; steps: string; docsUrl: string }[];
  };
}
