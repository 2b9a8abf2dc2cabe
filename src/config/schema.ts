import { z } from 'zod';
import { unmovableSecretParams } from '../security/redact';
import { parsePgUrl } from '../postgres/pg-url';
import { DATABASE_NAME_PATTERN } from '../catalog/naming';
import { COMPRESSION_LEVELS } from '../pipeline/compression';
import { KMS_ALLOWED_KEY } from '../crypto/keys/key-ids';

/** Accepts 12 or "12" (environment variables are strings) and checks the range. */
const int = (min: number, max: number) =>
  z.preprocess(
    (v) => (typeof v === 'string' && v.trim() !== '' ? Number(v) : v),
    z.number({ error: `must be a whole number from ${min} to ${max}` })
      .int({ error: `must be a whole number from ${min} to ${max}` })
      .min(min, { error: `must be a whole number from ${min} to ${max}` })
      .max(max, { error: `must be a whole number from ${min} to ${max}` }),
  );

/** Seconds: 600, "600", "600s", "10m" or "1h" (environment variables are strings). */
const duration = (minSeconds: number, maxSeconds: number) => {
  const error = `must be a duration from ${minSeconds} s to ${maxSeconds} s: seconds (600) or with a unit (600s, 10m, 1h)`;
  const units: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600 };
  return z.preprocess((v) => {
    if (typeof v !== 'string') return v;
    const m = /^\s*(\d+)\s*([smh]?)\s*$/.exec(v);
    return m ? Number(m[1]) * units[m[2]!]! : v;
  }, z.number({ error }).int({ error }).min(minSeconds, { error }).max(maxSeconds, { error }));
};

/** Bytes: 134217728, "128MiB", "128M", "64k", "1G" (k, M, G are powers of 1024; environment variables are strings). */
const byteSize = (minBytes: number, maxBytes: number) => {
  const error = `must be a size from ${minBytes} bytes to ${maxBytes / 1024 ** 3} GiB: bytes (134217728) or with a unit (64k, 128M, 1G; powers of 1024)`;
  const units: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };
  return z.preprocess((v) => {
    if (typeof v !== 'string') return v;
    const m = /^\s*(\d+)\s*([a-z]*)\s*$/i.exec(v);
    const unit = m ? units[m[2]!.toLowerCase()] : undefined;
    return m && unit ? Number(m[1]) * unit : v;
  }, z.number({ error }).int({ error }).min(minBytes, { error }).max(maxBytes, { error }));
};

/** A listening address: host:port, like 127.0.0.1:9464 or 0.0.0.0:8888. */
export const HOST_PORT = /^[^\s:/]+:\d{1,5}$/;
const hostPort = z.string().regex(HOST_PORT, { error: 'must be host:port, like 127.0.0.1:9464' });

/** The path of a PEM file (not the PEM text: keep key material in files, not in the environment). */
const pemFile = z.string().min(1).refine((v) => !v.includes('-----BEGIN'), { error: 'must be the path of a PEM file, not its contents' });

const bool = z.preprocess(
  (v) => (v === 'true' || v === '1' ? true : v === 'false' || v === '0' ? false : v),
  z.boolean({ error: 'must be true or false' }),
);

/** Why a configured URL names its database twice (path and `?dbname=`), which tools would read differently. */
function databaseParamProblem(value: string): string | undefined {
  try {
    parsePgUrl(value, { what: 'the URL' });
    return undefined;
  } catch (err) {
    return (err as Error).message.replace(/^the URL:?\s*/, '');
  }
}

export const postgresUrl = z.string({ error: 'must be a postgresql:// URL' }).superRefine((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'must be a URL like postgresql://user@host:5432/dbname' });
    return;
  }
  if (url.protocol !== 'postgresql:' && url.protocol !== 'postgres:') {
    ctx.addIssue({ code: 'custom', message: `must use postgresql:// (got ${url.protocol}//)` });
  } else if (!decodeURIComponent(url.pathname.replace(/^\//, ''))) {
    ctx.addIssue({ code: 'custom', message: 'must name a database, as in postgresql://user@host:5432/dbname' });
  } else if (databaseParamProblem(value)) {
    ctx.addIssue({ code: 'custom', message: databaseParamProblem(value)! });
  } else if (unmovableSecretParams(url).length > 0) {
    ctx.addIssue({
      code: 'custom',
      message: `holds ${unmovableSecretParams(url).join(', ')}, a secret that pg_dump would show on its command line; put it in a service file (PGSERVICEFILE, ?service=NAME) or use a key file without a passphrase (mode 0600)`,
    });
  }
});

const HHMM = /^([01]\d|2[0-3]):([0-5]\d)$/;
const CRON_FIELD = /^[\d*,/\-A-Za-z?LW#]+$/;
export const scheduleSpec = z.string({ error: 'must be a string' }).refine(
  (s) => s === 'off' || HHMM.test(s) || (s.trim().split(/\s+/).length === 5 && s.trim().split(/\s+/).every((f) => CRON_FIELD.test(f))),
  { error: 'must be "HH:MM" (daily, UTC), a 5-field cron expression (UTC), or "off"' },
);

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'must be an environment variable name' });

export const DatabaseEntrySchema = z.strictObject({
  name: z.string().regex(DATABASE_NAME_PATTERN, {
    error: 'must be 1-63 letters, digits, "_" or "-", starting with a letter or digit',
  }),
  url: postgresUrl.optional(),
  urlEnv: envName.optional(),
  passwordEnv: envName.optional(),
  schedule: scheduleSpec.default('03:00'),
  retentionDays: int(1, 36500).optional(),
  /** What a disaster-recovery drill checks in the restored copy, and where it restores it. */
  drill: z
    .strictObject({
      criticalTables: z.array(z.string().regex(/^[^.\s]+\.[^.\s]+$/, { error: 'must be schema.table' })).optional(),
      sql: z.array(z.string().min(1)).optional(),
      command: z.string().min(1).optional(),
      /** A server for the scratch database (default: the source's own server). */
      serverUrl: postgresUrl.optional(),
      /** The destination drills take backups from (default: offsite). */
      from: z.string().min(1).optional(),
    })
    .optional(),
  /** Beyond keep-for-days: grandfather-father-son counts, compliance rules, guard rails. */
  retention: z
    .strictObject({
      daily: int(0, 3650).optional(),
      weekly: int(0, 520).optional(),
      monthly: int(0, 1200).optional(),
      yearly: int(0, 100).optional(),
      minVerified: int(1, 1000).optional(),
      approvalShare: z.number({ error: 'must be a share from 0 to 1, e.g. 0.5' }).min(0).max(1).optional(),
      compliance: z
        .array(
          z.strictObject({
            name: z.string().min(1),
            every: z.enum(['daily', 'weekly', 'monthly', 'yearly'], { error: 'must be daily, weekly, monthly or yearly' }),
            keepDays: int(1, 36500),
            storages: z.array(z.string().min(1)).optional(),
          }),
        )
        .optional(),
    })
    .optional(),
  backupDir: z.string().min(1).optional(),
  // A database is production unless it says otherwise; forced restores are opt-in.
  production: bool.default(true),
  allowForceRestore: bool.optional(),
  /** Approvals of a restore here must come from someone other than the requester (default: production). */
  fourEyes: bool.optional(),
  /** Checks after a restore, beyond row counts: SQL that must return true, a command, a health URL. */
  restoreChecks: z
    .strictObject({
      sql: z.array(z.string().min(1)).optional(),
      command: z.string().min(1).optional(),
      healthUrl: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional(),
    })
    .optional(),
});
export type DatabaseEntry = z.infer<typeof DatabaseEntrySchema>;

export const S3_STORAGE_CLASSES = ['STANDARD', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'GLACIER_IR', 'GLACIER', 'DEEP_ARCHIVE'] as const;
const destinationName = z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, { error: 'must be 1-32 lower-case letters, digits or "-", starting with a letter' })
  .refine((n) => n !== 'local', { error: '"local" is the name of the local repository' });
const s3Bucket = z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, { error: 'must be an S3 bucket name (3-63 lower-case letters, digits, "." or "-")' });
const s3Prefix = z.string().regex(/^$|^[^/].*[^/]$|^[^/]$/, { error: 'must not start or end with "/"' });
const s3Endpoint = z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' });
const sse = z.enum(['AES256', 'aws:kms'], { error: 'must be AES256 or aws:kms' });
const lockMode = z.enum(['GOVERNANCE', 'COMPLIANCE'], { error: 'must be GOVERNANCE or COMPLIANCE' });

export const DestinationEntrySchema = z.discriminatedUnion('type', [
  z.strictObject({
    name: destinationName,
    type: z.literal('local'),
    path: z.string().min(1, { error: 'must be a folder path' }),
    retentionDays: int(1, 36500).optional(),
  }),
  z.strictObject({
    name: destinationName,
    type: z.literal('s3'),
    bucket: s3Bucket,
    prefix: s3Prefix.default(''),
    endpoint: s3Endpoint.optional(),
    region: z.string().min(1).optional(),
    forcePathStyle: bool.optional(),
    storageClass: z.enum(S3_STORAGE_CLASSES, { error: `must be one of ${S3_STORAGE_CLASSES.join(', ')}` }).optional(),
    serverSideEncryption: sse.optional(),
    sseKmsKeyId: z.string().min(1).optional(),
    objectLock: z.strictObject({ mode: lockMode, days: int(1, 36500) }).optional(),
    accessKeyIdEnv: envName.optional(),
    secretAccessKeyEnv: envName.optional(),
    retentionDays: int(1, 36500).optional(),
  }),
], { error: 'must have type "local" (with path) or "s3" (with bucket)' });
export type DestinationEntry = z.infer<typeof DestinationEntrySchema>;

export const GlobalSchema = z
  .object({
    backupDir: z.string().min(1, { error: 'must be a folder path' }),
    retentionDays: int(1, 36500),
    encryptionKey: z.string().min(1, { error: 'must be the path of a key file' }),
    cipher: z.enum(['aes-256-gcm', 'aes-256-cbc'], { error: 'must be aes-256-gcm (aes-256-cbc is accepted as an alias)' }),
    compression: z.enum(['zstd', 'gzip'], { error: 'must be zstd or gzip' }),
    compressionLevel: int(1, 19).optional(),
    parallelJobs: int(1, 64),
    backupFormat: z.enum(['parts', 'stream'], { error: 'must be parts (parallel, one object per table part) or stream (one pg_dump archive)' }),
    // One block (8 KiB) at least: a part is a range of whole blocks.
    partSize: byteSize(8192, 64 * 1024 ** 3),
    shutdownGraceSeconds: int(0, 86400),
    allowForceRestoreToUrlTargets: bool,
    stallTimeout: duration(5, 86400),
    lockWaitTimeout: duration(1, 86400),
    connectTimeout: duration(1, 3600),
    requestTimeout: duration(1, 86400),
    webhookUrl: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional(),
    emailNotifications: z
      .string()
      .transform((s) => s.split(',').map((e) => e.trim()).filter(Boolean))
      .pipe(z.array(z.email({ error: 'must be a comma-separated list of e-mail addresses' })))
      .optional(),
    temporalAddress: z.string().regex(/^[^\s:]+:\d{1,5}$/, { error: 'must be host:port, like 127.0.0.1:7233' }),
    temporalNamespace: z.string().min(1),
    taskQueue: z.string().min(1),
    longStepSlots: int(1, 256).optional(),
    shortStepSlots: int(1, 256).optional(),
    temporalTls: bool.optional(),
    temporalTlsCert: pemFile.optional(),
    temporalTlsKey: pemFile.optional(),
    temporalTlsCa: pemFile.optional(),
    temporalTlsServerName: z.string().regex(/^[a-zA-Z0-9.-]{1,253}$/, { error: 'must be a DNS name, like temporal.example.com' }).optional(),
    temporalApiKey: z.string().min(8, { error: 'must be the API key itself (at least 8 characters)' }).optional(),
    codecServerAddress: hostPort,
    codecCorsOrigins: z
      .union([z.string().transform((s) => s.split(',').map((e) => e.trim()).filter(Boolean)), z.array(z.string())])
      .pipe(z.array(z.string().regex(/^https?:\/\/[^\s/]+$/, { error: 'must be a comma-separated list of origins like http://localhost:8233 (scheme, host and port, no path)' }))),
    codecToken: z.string().min(16, { error: 'must be at least 16 characters (a random bearer token, e.g. `openssl rand -hex 32`)' }).optional(),
    metricsAddress: hostPort.optional(),
    databaseUrl: postgresUrl.optional(),
    databases: z.array(DatabaseEntrySchema).optional(),
    destinations: z.array(DestinationEntrySchema).optional(),
    archiveDir: z.string().min(1, { error: 'must be a folder path' }).optional(),
    s3Bucket: s3Bucket.optional(),
    s3Prefix: s3Prefix.optional(),
    s3Endpoint: s3Endpoint.optional(),
    s3Region: z.string().min(1).optional(),
    s3StorageClass: z.enum(S3_STORAGE_CLASSES, { error: `must be one of ${S3_STORAGE_CLASSES.join(', ')}` }).optional(),
    s3ServerSideEncryption: sse.optional(),
    s3ObjectLockMode: lockMode.optional(),
    s3ObjectLockDays: int(1, 36500).optional(),
    kmsKeyId: z.string().regex(/^(alias\/[a-zA-Z0-9/_-]+|arn:aws[a-z-]*:kms:.+|[0-9a-f-]{36}|mrk-[0-9a-f]{32})$/, {
      error: 'must be a KMS key id, key ARN, alias/NAME or alias ARN',
    }).optional(),
    kmsEndpoint: s3Endpoint.optional(),
    kmsRegion: z.string().min(1).optional(),
    // Keys a backup may name besides the configured key's account and region (e.g. another account's key).
    kmsAllowedKeys: z
      .union([z.string().transform((s) => s.split(',').map((e) => e.trim()).filter(Boolean)), z.array(z.string())])
      .pipe(z.array(z.string().regex(KMS_ALLOWED_KEY, { error: 'must be a comma-separated list of KMS key ARNs (arn:aws:kms:REGION:ACCOUNT:key/ID, or key/* for every key of that account and region)' })))
      .optional(),
    keyRotation: z.enum(['quarterly', 'off'], { error: 'must be quarterly or off' }),
    retentionMinBackups: int(1, 1000),
    retentionApprovalShare: z.preprocess((v) => (typeof v === 'string' && v.trim() !== '' ? Number(v) : v), z.number({ error: 'must be a share from 0 to 1, e.g. 0.5' }).min(0, { error: 'must be a share from 0 to 1, e.g. 0.5' }).max(1, { error: 'must be a share from 0 to 1, e.g. 0.5' })),
    retentionSchedule: scheduleSpec,
    drillSchedule: z.enum(['on', 'off'], { error: 'must be on or off' }),
    smtpHost: z.string().min(1),
    smtpPort: int(1, 65535),
    smtpSecure: bool,
    smtpUser: z.string().min(1).optional(),
    // Not z.email(): `lifeline@localhost`, the default, is a fine sender for a local MTA.
    smtpFrom: z.string().regex(/^[^@\s]+@[^@\s]+$/, { error: 'must be an e-mail address like lifeline@example.com' }),
    notifySuccess: bool,
    sizeAnomalyPercent: int(1, 1000),
    minFreePercent: int(0, 99),
    rpoHours: int(1, 8760),
    rpoGraceHours: int(0, 168),
  })
  .superRefine((c, ctx) => {
    if (c.compressionLevel === undefined) return;
    const range = COMPRESSION_LEVELS[c.compression];
    if (c.compressionLevel < range.min || c.compressionLevel > range.max) {
      ctx.addIssue({
        code: 'custom',
        path: ['compressionLevel'],
        message: `must be from ${range.min} to ${range.max} for ${c.compression}`,
      });
    }
  });
