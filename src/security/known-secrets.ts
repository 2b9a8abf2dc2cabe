import type { DatabaseConfig, DestinationConfig } from '../config/config';
import { isSecretParam, registerSecret } from './redact';

/** Variables that hold a secret whatever the configuration says (read by Lifeline or by the libraries it uses). */
const SECRET_VARIABLES = ['BACKUP_SMTP_PASSWORD', 'BACKUP_S3_SECRET_ACCESS_KEY', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'PGPASSWORD'];

/** The password in a URL's user part, and the value of every parameter named like a secret. */
function urlSecrets(url: string | undefined): string[] {
  if (!url) return [];
  try {
    const u = new URL(url);
    const params = [...u.searchParams.entries()].filter(([k]) => isSecretParam(k)).map(([, v]) => v);
    return [...(u.password ? [decodeURIComponent(u.password)] : []), ...params];
  } catch {
    return [];
  }
}

/**
 * Tells the redactor every secret value a loaded configuration leads to: database passwords (in
 * URLs or in the variables `passwordEnv` names), S3 secret keys, the SMTP password.
 */
export function registerConfigSecrets(databases: DatabaseConfig[], destinations: DestinationConfig[], env: NodeJS.ProcessEnv): void {
  for (const name of SECRET_VARIABLES) registerSecret(env[name]);
  for (const db of databases) {
    for (const secret of [...urlSecrets(db.url), ...urlSecrets(db.drill.serverUrl)]) registerSecret(secret);
    if (db.passwordEnv) registerSecret(env[db.passwordEnv]);
  }
  for (const d of destinations) if (d.kind === 's3' && d.credentialsEnv) registerSecret(env[d.credentialsEnv.secretAccessKey]);
}
