import fs from 'node:fs';
import type { TLSConfig } from '@temporalio/client';
import type { Config } from '../config';

/**
 * How every process reaches Temporal: the address plus TLS (a server CA, an mTLS client pair) and
 * an API key, as configured. The API's client, the worker's client and the worker's
 * NativeConnection all connect with these options, so a Temporal Cloud or TLS cluster is one
 * configuration, not three.
 */
export interface TemporalConnectionOptions {
  address: string;
  tls?: TLSConfig | boolean;
  apiKey?: string;
}

export function temporalConnectionOptions(temporal: Config['temporal']): TemporalConnectionOptions {
  const { tls, apiKey, address } = temporal;
  const read = (file: string, what: string): Buffer => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new Error(`Cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
  };
  const custom: TLSConfig = {
    ...(tls.caPath ? { serverRootCACertificate: read(tls.caPath, 'TEMPORAL_TLS_CA') } : {}),
    ...(tls.certPath && tls.keyPath
      ? { clientCertPair: { crt: read(tls.certPath, 'TEMPORAL_TLS_CERT'), key: read(tls.keyPath, 'TEMPORAL_TLS_KEY') } }
      : {}),
    ...(tls.serverName ? { serverNameOverride: tls.serverName } : {}),
  };
  const customized = Object.keys(custom).length > 0;
  // Unset means "decide from the rest": files imply TLS; an API key alone makes the SDK use TLS too.
  const enabled = tls.enabled ?? (customized ? true : undefined);
  return {
    address,
    ...(enabled === undefined ? {} : { tls: enabled ? (customized ? custom : true) : false }),
    ...(apiKey ? { apiKey } : {}),
  };
}
