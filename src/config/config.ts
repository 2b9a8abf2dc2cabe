import { LifelineError } from '../errors';
import type { CompressionAlgorithm } from '../pipeline/compression';
import type { RetentionPolicy } from '../retention/policy';

export type ScheduleSpec = { kind: 'daily'; hour: number; minute: number } | { kind: 'cron'; expression: string } | { kind: 'off' };

/**
 * One database Lifeline backs up. `url` may hold a password: it stays on the worker side and is
 * never passed to Temporal (workflows only see `name`).
 */
export interface DatabaseConfig {
  name: string;
  url: string;
  /** Environment variable holding the password, read when connecting. */
  passwordEnv?: string;
  schedule: ScheduleSpec;
  retentionDays: number;
  drill: DrillConfig;
  /** The full policy (keepDays = retentionDays) and the share of backups a run may delete without approval. */
  retention: RetentionPolicy & { approvalShare: number };
  backupDir: string;
  production: boolean;
  /** `--force` (no approval) may replace this database. */
  allowForceRestore: boolean;
  /** An approval of a restore here must come from someone other than the requester. */
  fourEyes: boolean;
  restoreChecks: RestoreChecks;
}

export interface DrillConfig {
  /** `schema.table`: rows checksummed at backup time and compared in the drill's copy. */
  criticalTables: string[];
  /** Each must return true in the drill's copy, e.g. "SELECT NOT EXISTS (SELECT 1 FROM accounts a LEFT JOIN users u ON u.id = a.user_id WHERE u.id IS NULL)". */
  sql: string[];
  /** Run with DATABASE_URL set to the drill's copy (the application's critical-path tests); must exit 0. */
  command?: string;
  /** Server for the scratch database; default the source's. */
  serverUrl?: string;
  /** The destination the drill restores from. */
  from: string;
}

export interface RestoreChecks {
  /** Each query must return a single true value, e.g. "SELECT count(*) > 0 FROM users". */
  sql?: string[];
  /** Run with DATABASE_URL set to the restored database; must exit 0. */
  command?: string;
  /** Must answer 2xx after the restore is in place. */
  healthUrl?: string;
}

export interface LifelineConfig {
  /** Where the configuration came from, for messages. */
  sources: string[];
  backupDir: string;
  retentionDays: number;
  /** New backups use KMS when `kms.keyId` is set, else the local key file; old backups open with the provider that wrapped them. */
  encryption: { keyFile: string; cipher: 'aes-256-gcm'; kms: KmsConfig };
  /** The retention policy of a database that sets none of its own. */
  retention: DatabaseConfig['retention'];
  /** `on`: quarterly drill and monthly restore test Schedules (first Sunday, 05:00 UTC). */
  drillSchedule: 'on' | 'off';
  /** When the retention workflow runs (daily, after the backups). */
  retentionSchedule: ScheduleSpec;
  /** `quarterly`: a Schedule runs keyRotationWorkflow; `off`: only `lifeline keys rotate`. */
  keyRotation: 'quarterly' | 'off';
  /** Where verified backups are replicated to, besides the local repository. */
  destinations: DestinationConfig[];
  compression: { algorithm: CompressionAlgorithm; level?: number };
  parallelJobs: number;
  /**
   * `parts`: a backup is an archive, a globals part and the rows of each table in parts of about
   * `partBytes` of table, dumped by BACKUP_PARALLEL_JOBS sessions; `stream`: one pg_dump archive.
   */
  backup: { format: 'parts' | 'stream'; partBytes: number };
  /** How long a stopping worker lets running steps finish before cancelling them. */
  shutdownGraceSeconds: number;
  /** `--force` to a URL target that names no configured database (BACKUP_ALLOW_FORCE_RESTORE_TO_URL_TARGETS). */
  restore: { allowForceToUrlTargets: boolean };
  /** When a waiting step gives up, instead of hanging until the 12 h activity timeout. */
  timeouts: StepTimeouts;
  notifications: {
    webhookUrl?: string;
    email: string[];
    /** Used when `email` has recipients (default: the local MTA on localhost:25). */
    smtp: { host: string; port: number; secure: boolean; user?: string; from: string };
    /** Send the completion notice of a successful backup (BACKUP_NOTIFY_SUCCESS). */
    onSuccess: boolean;
  };
  /** Thresholds of the alert conditions. */
  alerts: { sizeAnomalyPercent: number; minFreePercent: number; rpoHours: number; rpoGraceHours: number };
  temporal: TemporalConfig;
  /** `lifeline codec-server`: decodes Lifeline's encrypted payloads for the Web UI and the CLI. */
  codecServer: { address: string; corsOrigins: string[]; token?: string };
  /** The worker's Prometheus endpoint (host:port); off when unset. */
  metrics: { address?: string };
  databases: DatabaseConfig[];
}

export interface TemporalConfig {
  address: string;
  namespace: string;
  /** Workflows and short steps (checks, catalog, notices, audit, RPO watchdog). */
  taskQueue: string;
  /** Long steps (dump, verify, restore, transfer): `<taskQueue>-long`, so they never delay a short one. */
  longTaskQueue: string;
  /** How many of each a worker runs at once (LIFELINE_LONG_STEP_SLOTS, LIFELINE_SHORT_STEP_SLOTS). */
  slots: { long: number; short: number };
  /** TLS to the frontend (TEMPORAL_TLS_*); absent: plaintext. */
  tls?: TemporalTlsConfig;
  /** TEMPORAL_API_KEY (Temporal Cloud): sent as a bearer token; a secret, registered for redaction. */
  apiKey?: string;
}

export interface TemporalTlsConfig {
  /** PEM files (absolute paths): client certificate and key (mTLS), and the CA that signed the server's. */
  certFile?: string;
  keyFile?: string;
  caFile?: string;
  /** The name the server's certificate must carry, when it differs from the address's host. */
  serverName?: string;
}

export interface KmsConfig {
  /** Key id, key ARN or alias for new backups; an alias is what `keys rotate` repoints. */
  keyId?: string;
  endpoint?: string;
  region: string;
  /**
   * KMS keys (ARNs) a backup may name besides those in the configured key's account and region
   * (BACKUP_KMS_ALLOWED_KEYS). Any other key id in a manifest is refused before KMS is asked.
   */
  allowedKeyIds?: string[];
  network?: NetworkTimeouts;
}

/** S3 and KMS requests: how long to wait for a connection, and for the next byte of an answer. */
export interface NetworkTimeouts {
  connectSeconds: number;
  idleSeconds: number;
}

export interface StepTimeouts {
  /** A step that moved no bytes (or rows) for this long fails with `Stalled`, naming what it waits on. */
  stallSeconds: number;
  /** pg_dump's --lock-wait-timeout and the inventory session's lock_timeout. */
  lockWaitSeconds: number;
  network: NetworkTimeouts;
}

export type DestinationConfig =
  | { name: string; kind: 'local'; path: string; retentionDays?: number }
  | {
      name: string;
      kind: 's3';
      /** Overrides the database's keep-for-days in this destination. */
      retentionDays?: number;
      bucket: string;
      prefix: string;
      endpoint?: string;
      region: string;
      forcePathStyle: boolean;
      storageClass?: string;
      serverSideEncryption?: 'AES256' | 'aws:kms';
      sseKmsKeyId?: string;
      objectLock?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number };
      /** Names of the environment variables holding the keys; absent: the AWS default credential chain. */
      credentialsEnv?: { accessKeyId: string; secretAccessKey: string };
      network?: NetworkTimeouts;
    };

export function findDestination(config: LifelineConfig, name: string): DestinationConfig {
  const destination = config.destinations.find((d) => d.name === name);
  if (!destination) {
    const known = config.destinations.map((d) => d.name).join(', ') || 'none';
    throw new LifelineError('UnknownDestination', `unknown destination "${name}" (configured: ${known})`, {
      hint: 'use one of the configured names, or configure BACKUP_S3_BUCKET / destinations in lifeline.config.yaml',
    });
  }
  return destination;
}

export function findDatabase(config: LifelineConfig, name: string): DatabaseConfig {
  const db = config.databases.find((d) => d.name === name);
  if (!db) {
    const known = config.databases.map((d) => d.name).join(', ') || 'none';
    throw new LifelineError('UnknownDatabase', `unknown database "${name}" (configured: ${known})`, {
      hint: 'use one of the configured names, or add the database to lifeline.config.yaml',
    });
  }
  return db;
}
