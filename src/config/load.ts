import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type YAML from 'yaml';
import { ConfigError } from '../errors';
import { looksLikeKey, registerSecret } from '../security/redact';
import { registerConfigSecrets } from '../security/known-secrets';
import type { DatabaseConfig, DestinationConfig, LifelineConfig, ScheduleSpec, TemporalTlsConfig } from './config';
import { demoDatabaseUrl } from './demo';
import type { z } from 'zod';
import { GlobalSchema, type DatabaseEntry, type DestinationEntry } from './schema';

/** Each global setting: its environment variable (which wins) and its key in the config file. */
const SETTINGS = [
  ['backupDir', 'BACKUP_DIR', '.lifeline/backups'],
  ['retentionDays', 'BACKUP_RETENTION_DAYS', '30'],
  ['encryptionKey', 'BACKUP_ENCRYPTION_KEY', '.lifeline/keys/master.key'],
  ['cipher', 'BACKUP_CIPHER', 'aes-256-gcm'],
  ['compression', 'BACKUP_COMPRESSION', 'zstd'],
  ['compressionLevel', 'BACKUP_COMPRESSION_LEVEL', undefined],
  ['parallelJobs', 'BACKUP_PARALLEL_JOBS', '2'],
  ['backupFormat', 'BACKUP_FORMAT', 'parts'],
  ['partSize', 'BACKUP_PART_SIZE', '128MiB'],
  ['webhookUrl', 'BACKUP_WEBHOOK_URL', undefined],
  ['emailNotifications', 'BACKUP_EMAIL_NOTIFICATIONS', undefined],
  ['temporalAddress', 'TEMPORAL_ADDRESS', '127.0.0.1:7233'],
  ['temporalNamespace', 'TEMPORAL_NAMESPACE', 'default'],
  ['taskQueue', 'LIFELINE_TASK_QUEUE', 'lifeline'],
  ['longStepSlots', 'LIFELINE_LONG_STEP_SLOTS', undefined],
  ['shortStepSlots', 'LIFELINE_SHORT_STEP_SLOTS', undefined],
  ['temporalTls', 'TEMPORAL_TLS', undefined],
  ['temporalTlsCert', 'TEMPORAL_TLS_CERT', undefined],
  ['temporalTlsKey', 'TEMPORAL_TLS_KEY', undefined],
  ['temporalTlsCa', 'TEMPORAL_TLS_CA', undefined],
  ['temporalTlsServerName', 'TEMPORAL_TLS_SERVER_NAME', undefined],
  ['temporalApiKey', 'TEMPORAL_API_KEY', undefined],
  ['codecServerAddress', 'LIFELINE_CODEC_SERVER_ADDRESS', '127.0.0.1:8888'],
  ['codecCorsOrigins', 'LIFELINE_CODEC_CORS_ORIGINS', 'http://localhost:8233'],
  ['codecToken', 'LIFELINE_CODEC_TOKEN', undefined],
  ['metricsAddress', 'LIFELINE_METRICS_ADDRESS', undefined],
  ['databaseUrl', 'DATABASE_URL', undefined],
  ['shutdownGraceSeconds', 'LIFELINE_SHUTDOWN_GRACE_SECONDS', '30'],
  ['allowForceRestoreToUrlTargets', 'BACKUP_ALLOW_FORCE_RESTORE_TO_URL_TARGETS', 'false'],
  ['stallTimeout', 'BACKUP_STALL_TIMEOUT', '10m'],
  ['lockWaitTimeout', 'BACKUP_LOCK_WAIT_TIMEOUT', '2m'],
  ['connectTimeout', 'BACKUP_CONNECT_TIMEOUT', '10s'],
  ['requestTimeout', 'BACKUP_REQUEST_TIMEOUT', '2m'],
  ['archiveDir', 'BACKUP_ARCHIVE_DIR', undefined],
  ['s3Bucket', 'BACKUP_S3_BUCKET', undefined],
  ['s3Prefix', 'BACKUP_S3_PREFIX', undefined],
  ['s3Endpoint', 'BACKUP_S3_ENDPOINT', undefined],
  ['s3Region', 'BACKUP_S3_REGION', undefined],
  ['s3StorageClass', 'BACKUP_S3_STORAGE_CLASS', undefined],
  ['s3ServerSideEncryption', 'BACKUP_S3_SSE', undefined],
  ['s3ObjectLockMode', 'BACKUP_S3_OBJECT_LOCK_MODE', undefined],
  ['s3ObjectLockDays', 'BACKUP_S3_OBJECT_LOCK_DAYS', undefined],
  ['kmsKeyId', 'BACKUP_KMS_KEY_ID', undefined],
  ['kmsEndpoint', 'BACKUP_KMS_ENDPOINT', undefined],
  ['kmsRegion', 'BACKUP_KMS_REGION', undefined],
  ['kmsAllowedKeys', 'BACKUP_KMS_ALLOWED_KEYS', undefined],
  ['keyRotation', 'BACKUP_KEY_ROTATION', 'quarterly'],
  ['retentionMinBackups', 'BACKUP_RETENTION_MIN_BACKUPS', '3'],
  ['retentionApprovalShare', 'BACKUP_RETENTION_APPROVAL_SHARE', '0.5'],
  ['retentionSchedule', 'BACKUP_RETENTION_SCHEDULE', '05:00'],
  ['drillSchedule', 'BACKUP_DRILL_SCHEDULE', 'on'],
  ['smtpHost', 'BACKUP_SMTP_HOST', 'localhost'],
  ['smtpPort', 'BACKUP_SMTP_PORT', '25'],
  ['smtpSecure', 'BACKUP_SMTP_SECURE', 'false'],
  ['smtpUser', 'BACKUP_SMTP_USER', undefined],
  ['smtpFrom', 'BACKUP_SMTP_FROM', 'lifeline@localhost'],
  ['notifySuccess', 'BACKUP_NOTIFY_SUCCESS', 'true'],
  ['sizeAnomalyPercent', 'BACKUP_SIZE_ANOMALY_PERCENT', '20'],
  ['minFreePercent', 'BACKUP_MIN_FREE_PERCENT', '10'],
  ['rpoHours', 'BACKUP_RPO_HOURS', '24'],
  ['rpoGraceHours', 'BACKUP_RPO_GRACE_HOURS', '2'],
] as const;

/** The environment variables of the global settings (the deployment's test checks what it sets against them). */
export const SETTING_VARIABLES: readonly string[] = SETTINGS.map(([, envVar]) => envVar);

export const CONFIG_FILE_NAMES = ['lifeline.config.json', 'lifeline.config.yaml', 'lifeline.config.yml'];

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Explicit config file; otherwise LIFELINE_CONFIG, then lifeline.config.{json,yaml,yml} in cwd. */
  file?: string;
  /** False for commands that work without any database (keys init). */
  requireDatabases?: boolean;
}

function findConfigFile(env: NodeJS.ProcessEnv, cwd: string, explicit?: string): string | undefined {
  const named = explicit ?? env.LIFELINE_CONFIG;
  if (named) return path.resolve(cwd, named);
  return CONFIG_FILE_NAMES.map((n) => path.join(cwd, n)).find((f) => existsSync(f));
}

function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`config file ${file} cannot be read: ${(err as Error).message}`]);
  }
  let data: unknown;
  try {
    // The YAML parser loads only for a YAML config file (most commands start without one).
    data = file.endsWith('.json') ? JSON.parse(text) : (require('yaml') as typeof YAML).parse(text);
  } catch (err) {
    throw new ConfigError([`config file ${file} is not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message}`]);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError([`config file ${file} must hold an object with a "databases" list`]);
  }
  return data as Record<string, unknown>;
}

function parseSchedule(spec: string): ScheduleSpec {
  if (spec === 'off') return { kind: 'off' };
  const m = /^(\d\d):(\d\d)$/.exec(spec);
  if (m) return { kind: 'daily', hour: Number(m[1]), minute: Number(m[2]) };
  return { kind: 'cron', expression: spec.trim() };
}

function show(value: unknown): string {
  return value === undefined ? '(unset)' : JSON.stringify(value);
}

/** Settings whose refused value is not shown: a truncated key is still most of a key, and a key file's text is the key. */
const UNSHOWN: ReadonlySet<string> = new Set(['temporalApiKey', 'codecToken', 'temporalTlsKey']);

/** Loads and validates the whole configuration; throws one ConfigError listing every problem. */
export function loadConfig(options: LoadOptions = {}): LifelineConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const file = findConfigFile(env, cwd, options.file);
  const fileData = file ? readConfigFile(file) : {};
  const fileLabel = file ? path.basename(file) : '';

  const raw: Record<string, unknown> = {};
  const label: Record<string, string> = {};
  const fileKeys = new Set<string>([...SETTINGS.map(([k]) => k), 'databases', 'destinations']);
  const problems: string[] = [];
  for (const key of Object.keys(fileData)) {
    if (!fileKeys.has(key)) problems.push(`${fileLabel}: unknown key "${key}" (allowed: ${[...fileKeys].join(', ')})`);
  }
  for (const [key, envVar, fallback] of SETTINGS) {
    const fromEnv = env[envVar];
    if (fromEnv !== undefined && fromEnv !== '') {
      raw[key] = fromEnv;
      label[key] = envVar;
    } else if (fileData[key] !== undefined) {
      raw[key] = fileData[key];
      label[key] = `${fileLabel}: ${key}`;
    } else {
      raw[key] = fallback;
      label[key] = envVar;
    }
  }
  if (fileData.databases !== undefined) raw.databases = fileData.databases;
  if (fileData.destinations !== undefined) raw.destinations = fileData.destinations;
  if (raw.databaseUrl === undefined && raw.databases === undefined) raw.databaseUrl = demoDatabaseUrl(cwd);

  const parsed = GlobalSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const [top, ...rest] = issue.path.map(String);
      let value: unknown = raw;
      for (const p of issue.path) value = (value as Record<string | number, unknown> | undefined)?.[p as string];
      const where =
        top === 'databases' || top === 'destinations'
          ? `${fileLabel}: ${top}${rest.map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`)).join('')}`
          : (label[top ?? ''] ?? top ?? 'configuration');
      const shown = UNSHOWN.has(top ?? '') && rest.length === 0 && typeof value === 'string' ? `(${value.length} characters, not shown)` : show(value);
      problems.push(`${where} = ${shown}: ${issue.message}`);
    }
  }
  if (!parsed.success || problems.length) throw new ConfigError(problems);
  const c = parsed.data;
  const resolve = (p: string) => path.resolve(cwd, p);

  const entries = c.databases ?? [];
  const databases: DatabaseConfig[] = [];
  if (entries.length === 0 && c.databaseUrl) {
    const dbName = decodeURIComponent(new URL(c.databaseUrl).pathname.slice(1));
    databases.push({
      name: dbName.replace(/[^a-zA-Z0-9_-]/g, '_'),
      url: c.databaseUrl,
      schedule: { kind: 'daily', hour: 3, minute: 0 },
      retentionDays: c.retentionDays,
      retention: retentionPolicy(c, c.retentionDays, undefined),
      drill: drillConfig(undefined),
      backupDir: resolve(c.backupDir),
      // The runbook's production database: list it in lifeline.config.yaml (urlEnv: DATABASE_URL) to say otherwise.
      production: true,
      allowForceRestore: false,
      fourEyes: true,
      restoreChecks: {},
    });
  } else if (entries.length === 0 && options.requireDatabases !== false) {
    throw new ConfigError([
      'no database configured: set DATABASE_URL, or list databases in lifeline.config.yaml (or run `npm start` for the demo)',
    ]);
  }
  const seen = new Set<string>();
  entries.forEach((d, i) => {
    const where = `${fileLabel}: databases[${i}]`;
    if (seen.has(d.name)) problems.push(`${where}.name = ${show(d.name)}: names must be unique`);
    seen.add(d.name);
    const url = d.url ?? (d.urlEnv ? env[d.urlEnv] : undefined);
    if (d.url && d.urlEnv) problems.push(`${where}: set either url or urlEnv, not both`);
    if (!url) {
      problems.push(
        d.urlEnv
          ? `${where}.urlEnv = ${show(d.urlEnv)}: environment variable ${d.urlEnv} is not set`
          : `${where}: needs url (postgresql://user@host:5432/db) or urlEnv`,
      );
      return;
    }
    if (d.urlEnv) {
      const check = GlobalSchema.shape.databaseUrl.safeParse(url);
      if (!check.success) problems.push(`${d.urlEnv} (from ${where}.urlEnv): ${check.error.issues[0]?.message}`);
    }
    databases.push({
      name: d.name,
      url,
      passwordEnv: d.passwordEnv,
      schedule: parseSchedule(d.schedule),
      retentionDays: d.retentionDays ?? c.retentionDays,
      retention: retentionPolicy(c, d.retentionDays ?? c.retentionDays, d.retention),
      drill: drillConfig(d.drill),
      backupDir: resolve(d.backupDir ?? c.backupDir),
      production: d.production,
      allowForceRestore: d.allowForceRestore ?? false,
      fourEyes: d.fourEyes ?? d.production,
      restoreChecks: d.restoreChecks ?? {},
    });
  });
  const destinations = destinationsFrom(c, env, resolve, fileLabel, problems);
  // The runbook's variable name invites the key itself: refuse it without ever echoing it.
  if (looksLikeKey(c.encryptionKey) && !existsSync(resolve(c.encryptionKey))) {
    registerSecret(c.encryptionKey.trim());
    problems.push(
      `${label.encryptionKey} holds what looks like a key itself (the value is not shown), not the path of a key file: ` +
        'put the key in a file readable only by the worker (mode 0600, or create one with `lifeline keys init --file PATH`) and set it to that path',
    );
  }
  if ((c.temporalTlsCert === undefined) !== (c.temporalTlsKey === undefined)) {
    problems.push(`${c.temporalTlsCert ? label.temporalTlsCert : label.temporalTlsKey}: set both TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY (client certificate and its key), or neither`);
  }
  // An API key is a bearer secret: over plaintext only to this host (a local proxy that adds TLS).
  const temporalHost = c.temporalAddress.slice(0, c.temporalAddress.lastIndexOf(':'));
  if (c.temporalTls === false && c.temporalApiKey && !['127.0.0.1', 'localhost', '::1', '[::1]'].includes(temporalHost)) {
    problems.push(`${label.temporalTls} = false with TEMPORAL_API_KEY set: the key would cross the network in clear to ${c.temporalAddress}; remove TEMPORAL_TLS=false (an API key turns TLS on), or reach the server through a local proxy on 127.0.0.1`);
  }
  if (c.temporalTls === false && (c.temporalTlsCert || c.temporalTlsCa || c.temporalTlsServerName)) {
    problems.push(`${label.temporalTls} = false, but TEMPORAL_TLS_CERT/KEY/CA/SERVER_NAME are set: remove them, or set TEMPORAL_TLS=true`);
  }
  if (problems.length) throw new ConfigError(problems);
  registerConfigSecrets(databases, destinations, env);
  for (const secret of [c.temporalApiKey, c.codecToken]) if (secret) registerSecret(secret);

  const region = env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1';
  const network = { connectSeconds: c.connectTimeout, idleSeconds: c.requestTimeout };
  return {
    sources: [file ? file : 'environment'],
    backupDir: resolve(c.backupDir),
    retentionDays: c.retentionDays,
    // aes-256-cbc (the runbook's openssl default) is accepted and served by the authenticated GCM format.
    encryption: {
      keyFile: resolve(c.encryptionKey),
      cipher: 'aes-256-gcm',
      kms: { keyId: c.kmsKeyId, endpoint: c.kmsEndpoint, region: c.kmsRegion ?? region, allowedKeyIds: c.kmsAllowedKeys ?? [], network },
    },
    destinations: destinations.map((d) => (d.kind === 's3' ? { ...d, network } : d)),
    keyRotation: c.keyRotation,
    retention: retentionPolicy(c, c.retentionDays, undefined),
    retentionSchedule: parseSchedule(c.retentionSchedule),
    drillSchedule: c.drillSchedule,
    compression: { algorithm: c.compression, level: c.compressionLevel },
    parallelJobs: c.parallelJobs,
    backup: { format: c.backupFormat, partBytes: c.partSize },
    shutdownGraceSeconds: c.shutdownGraceSeconds,
    restore: { allowForceToUrlTargets: c.allowForceRestoreToUrlTargets },
    timeouts: { stallSeconds: c.stallTimeout, lockWaitSeconds: c.lockWaitTimeout, network },
    notifications: {
      webhookUrl: c.webhookUrl,
      email: c.emailNotifications ?? [],
      // The SMTP password is read by the worker from BACKUP_SMTP_PASSWORD when it sends.
      smtp: { host: c.smtpHost, port: c.smtpPort, secure: c.smtpSecure, user: c.smtpUser, from: c.smtpFrom },
      onSuccess: c.notifySuccess,
    },
    alerts: { sizeAnomalyPercent: c.sizeAnomalyPercent, minFreePercent: c.minFreePercent, rpoHours: c.rpoHours, rpoGraceHours: c.rpoGraceHours },
    temporal: {
      address: c.temporalAddress,
      namespace: c.temporalNamespace,
      taskQueue: c.taskQueue,
      longTaskQueue: `${c.taskQueue}-long`,
      slots: { long: c.longStepSlots ?? c.parallelJobs, short: c.shortStepSlots ?? Math.max(4, 2 * c.parallelJobs) },
      tls: temporalTls(c, resolve),
      apiKey: c.temporalApiKey,
    },
    codecServer: { address: c.codecServerAddress, corsOrigins: c.codecCorsOrigins, token: c.codecToken },
    metrics: { address: c.metricsAddress },
    databases,
  };
}

type Parsed = z.infer<typeof GlobalSchema>;

/** TLS is on when asked for (TEMPORAL_TLS=true), when any TLS file or name is set, or with an API key (Temporal Cloud). */
function temporalTls(c: Parsed, resolve: (p: string) => string): TemporalTlsConfig | undefined {
  const wanted = c.temporalTls ?? Boolean(c.temporalTlsCert || c.temporalTlsCa || c.temporalTlsServerName || c.temporalApiKey);
  if (!wanted) return undefined;
  const file = (p: string | undefined) => (p === undefined ? undefined : resolve(p));
  return { certFile: file(c.temporalTlsCert), keyFile: file(c.temporalTlsKey), caFile: file(c.temporalTlsCa), serverName: c.temporalTlsServerName };
}

function drillConfig(d: DatabaseEntry['drill']): DatabaseConfig['drill'] {
  return { criticalTables: d?.criticalTables ?? [], sql: d?.sql ?? [], command: d?.command, serverUrl: d?.serverUrl, from: d?.from ?? 'offsite' };
}

function retentionPolicy(c: Parsed, keepDays: number, r: DatabaseEntry['retention']): DatabaseConfig['retention'] {
  return {
    keepDays,
    daily: r?.daily ?? 0,
    weekly: r?.weekly ?? 0,
    monthly: r?.monthly ?? 0,
    yearly: r?.yearly ?? 0,
    minVerified: r?.minVerified ?? c.retentionMinBackups,
    approvalShare: r?.approvalShare ?? c.retentionApprovalShare,
    compliance: r?.compliance ?? [],
  };
}

/**
 * Replication destinations: the file's `destinations`, plus `offsite` from BACKUP_S3_* and `archive`
 * from BACKUP_ARCHIVE_DIR (a setting in the environment replaces a file entry of the same name).
 */
function destinationsFrom(c: Parsed, env: NodeJS.ProcessEnv, resolve: (p: string) => string, fileLabel: string, problems: string[]): DestinationConfig[] {
  const region = c.s3Region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1';
  const entries: DestinationEntry[] = [...(c.destinations ?? [])];
  const replace = (entry: DestinationEntry) => {
    const at = entries.findIndex((e) => e.name === entry.name);
    if (at >= 0) entries.splice(at, 1);
    entries.push(entry);
  };
  if (c.s3Bucket) {
    replace({
      name: 'offsite',
      type: 's3',
      bucket: c.s3Bucket,
      prefix: c.s3Prefix ?? '',
      endpoint: c.s3Endpoint,
      storageClass: c.s3StorageClass,
      serverSideEncryption: c.s3ServerSideEncryption,
      objectLock: c.s3ObjectLockDays ? { mode: c.s3ObjectLockMode ?? 'GOVERNANCE', days: c.s3ObjectLockDays } : undefined,
      accessKeyIdEnv: env.BACKUP_S3_ACCESS_KEY_ID ? 'BACKUP_S3_ACCESS_KEY_ID' : undefined,
      secretAccessKeyEnv: env.BACKUP_S3_SECRET_ACCESS_KEY ? 'BACKUP_S3_SECRET_ACCESS_KEY' : undefined,
    });
  }
  if (c.archiveDir) replace({ name: 'archive', type: 'local', path: c.archiveDir });

  const seen = new Set<string>();
  return entries.flatMap((e, i): DestinationConfig[] => {
    if (seen.has(e.name)) {
      problems.push(`${fileLabel}: destinations[${i}].name = ${show(e.name)}: names must be unique`);
      return [];
    }
    seen.add(e.name);
    if (e.type === 'local') return [{ name: e.name, kind: 'local', path: resolve(e.path), retentionDays: e.retentionDays }];
    if ((e.accessKeyIdEnv === undefined) !== (e.secretAccessKeyEnv === undefined)) {
      problems.push(`${fileLabel}: destinations[${i}]: set both accessKeyIdEnv and secretAccessKeyEnv, or neither (the AWS default credentials)`);
    }
    for (const name of [e.accessKeyIdEnv, e.secretAccessKeyEnv]) {
      if (name && !env[name]) problems.push(`destination ${e.name}: environment variable ${name} is not set`);
    }
    return [{
      name: e.name,
      kind: 's3',
      bucket: e.bucket,
      prefix: e.prefix,
      endpoint: e.endpoint,
      region: e.region ?? region,
      // S3-compatible servers (an endpoint) are addressed path-style unless told otherwise.
      forcePathStyle: e.forcePathStyle ?? e.endpoint !== undefined,
      storageClass: e.storageClass,
      serverSideEncryption: e.serverSideEncryption,
      sseKmsKeyId: e.sseKmsKeyId,
      objectLock: e.objectLock,
      retentionDays: e.retentionDays,
      credentialsEnv: e.accessKeyIdEnv && e.secretAccessKeyEnv ? { accessKeyId: e.accessKeyIdEnv, secretAccessKey: e.secretAccessKeyEnv } : undefined,
    }];
  });
}
