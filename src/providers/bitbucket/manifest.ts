import type { ProviderManifest } from '../manifest';

export const bitbucketManifest = {
  id: 'bitbucket',
  displayName: 'Bitbucket',
  auth: 'oauth2',
  credentialKind: 'bitbucket_oauth',
  resources: ['workspaces', 'members', 'repositories', 'pullRequests', 'commits', 'pipelines'],
  consent: {
    // The OAuth consumer's permissions (README "Creating a Bitbucket OAuth consumer"): Account,
    // Repositories, Pull requests and Pipelines, each Read
    // (https://support.atlassian.com/bitbucket-cloud/docs/use-oauth-on-bitbucket-cloud/).
    access: [
      'Account (read): who you are, your workspaces and their members',
      'Repositories (read): repository details and commits',
      'Pull requests (read): pull requests in every state, their reviewers and approvals',
      'Pipelines (read): pipeline runs and their results',
    ],
    synced: 'workspaces, members, repositories, pull requests, commits and pipelines',
  },
} as const satisfies ProviderManifest;
