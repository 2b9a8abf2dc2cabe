import type { LifelineConfig } from '../config/config';

/** What Connection.connect and NativeConnection.connect both take: address, TLS and API key. */
export interface TemporalConnectionOptions {
  address: string;
  tls?: { clientCertPair?: { crt: Buffer; key: Buffer }; serverRootCACertificate?: Buffer; serverNameOverride?: string };
  apiKey?: string;
}

/** The connection options of the configured Temporal frontend (TLS files read here, at connect). */
export async function temporalConnectionOptions(config: LifelineConfig): Promise<TemporalConnectionOptions> {
  // TLS and API key: filled in by issue 12 item 5.
  return { address: config.temporal.address };
}
