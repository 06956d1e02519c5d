import type { ProviderManifest } from '../manifest';

export const bitriseManifest = {
  id: 'bitrise',
  displayName: 'Bitrise',
  auth: 'token',
  credentialKind: 'bitrise_token',
  resources: ['organizations', 'apps', 'builds', 'pipelines'],
  consent: {
    // Bitrise tokens have no scopes: a token can do what its owner (or a workspace token's roles)
    // can, so the page says what Conduit does with it.
    access: [
      'Read your workspaces, apps, builds and pipelines through the Bitrise API',
      'Nothing else: Conduit never starts, aborts or changes builds, apps or settings',
    ],
    synced: 'workspaces, apps, builds and pipelines',
    // Both kinds authenticate the API the same way
    // (https://docs.bitrise.io/en/bitrise-ci/api/authenticating-with-the-bitrise-api).
    tokenHelp: [
      {
        kind: 'A personal access token',
        steps: 'In Bitrise, open your profile image → Account settings → Security → Personal access tokens → Create token.',
        docsUrl: 'https://docs.bitrise.io/en/bitrise-platform/accounts/personal-access-tokens',
      },
      {
        kind: 'Or a workspace API token (acts for the workspace, not for a person)',
        steps: 'In Bitrise, select the workspace → Settings → Security → Create token, and give it a role in the apps to sync.',
        docsUrl: 'https://docs.bitrise.io/en/bitrise-platform/workspaces/workspace-api-token.html',
      },
    ],
  },
} as const satisfies ProviderManifest;
