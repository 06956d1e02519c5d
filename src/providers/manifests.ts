import { bitbucketManifest } from './bitbucket/manifest';
import { bitriseManifest } from './bitrise/manifest';

/**
 * The providers Conduit connects to. Adding one means a folder under src/providers/ and a line
 * here; the compiler then asks for its adapter in ./registry.ts and its settings in ../config.ts.
 * Pure data: the workflow imports this file.
 */
export const MANIFESTS = {
  bitbucket: bitbucketManifest,
  bitrise: bitriseManifest,
} as const;

export type Provider = keyof typeof MANIFESTS;

export const PROVIDERS = Object.keys(MANIFESTS) as [Provider, ...Provider[]];

export type SyncResource<P extends Provider = Provider> = (typeof MANIFESTS)[P]['resources'][number];

export function syncResources<P extends Provider>(provider: P): readonly SyncResource<P>[] {
  return MANIFESTS[provider].resources;
}

export function isSyncResource(provider: Provider, resource: string): resource is SyncResource {
  return (MANIFESTS[provider].resources as readonly string[]).includes(resource);
}
