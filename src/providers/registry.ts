import type { z } from 'zod';
import type { ProviderAdapter } from './adapter';
import { bitbucketProvider } from './bitbucket';
import { bitriseProvider } from './bitrise';
import type { Provider } from './manifests';

/**
 * The adapters behind the provider manifests (./manifests.ts lists the providers; the compiler
 * holds this list to it). Each module brings its environment variables, how they become settings,
 * and how settings become an adapter.
 */
export const PROVIDER_MODULES = {
  bitbucket: bitbucketProvider,
  bitrise: bitriseProvider,
} as const satisfies { [P in Provider]: ProviderModule<P> };

export interface ProviderModule<P extends Provider> {
  env: z.ZodRawShape;
  /** Cross-variable checks, reported with the other configuration problems. */
  check?(env: never, ctx: z.RefinementCtx): void;
  settings(env: never): unknown;
  // Methods (not function properties) so each module may narrow its own settings' type.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each adapter has a store type of its own
  createAdapter(settings: never): ProviderAdapter<P, any>;
}

type Modules = typeof PROVIDER_MODULES;
export type ProviderSettings = { [P in Provider]: ReturnType<Modules[P]['settings']> };
export type Providers = { readonly [P in Provider]: ReturnType<Modules[P]['createAdapter']> };

type UnionToIntersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never;
type ProviderEnv = UnionToIntersection<Modules[Provider]['env']>;

/** Every provider's environment variables, merged into the config schema. */
export function providerEnvShape(): ProviderEnv {
  return Object.assign({}, ...Object.values(PROVIDER_MODULES).map((m) => m.env)) as ProviderEnv;
}

export function providerSettings(env: Record<string, unknown>): ProviderSettings {
  return Object.fromEntries(
    Object.entries(PROVIDER_MODULES).map(([id, m]) => [id, (m.settings as (e: unknown) => unknown)(env)]),
  ) as ProviderSettings;
}

/** One adapter per provider, built once per process from the configuration. */
export function createProviders(settings: ProviderSettings): Providers {
  return Object.fromEntries(
    Object.entries(PROVIDER_MODULES).map(([id, m]) => [id, (m.createAdapter as (s: unknown) => unknown)(settings[id as Provider])]),
  ) as Providers;
}

/** The adapter of a provider known only at run time, typed as the common interface. */
export function adapterOf(providers: Providers, provider: Provider): ProviderAdapter<Provider, unknown> {
  return providers[provider] as unknown as ProviderAdapter<Provider, unknown>;
}
