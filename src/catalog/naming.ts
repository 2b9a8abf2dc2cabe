/**
 * Backup ids and object keys. Pure functions: the workflow uses them too, so that the id of a backup
 * is fixed before any activity runs and every retry writes the same objects.
 */
export const BACKUP_TYPES = ['full', 'schema-only', 'data-only', 'pre-restore'] as const;
export type BackupType = (typeof BACKUP_TYPES)[number];

/** Database names double as folder names and search-attribute values. */
export const DATABASE_NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$/;

const ID_PATTERN = /^(.+)_(?:backup|prerestore)_(\d{8})_(\d{6})$/;

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** `YYYYMMDD_HHMMSS` in UTC. */
export function timestamp(at: Date): string {
  const date = `${at.getUTCFullYear()}${pad(at.getUTCMonth() + 1)}${pad(at.getUTCDate())}`;
  return `${date}_${pad(at.getUTCHours())}${pad(at.getUTCMinutes())}${pad(at.getUTCSeconds())}`;
}

/**
 * `<db>_backup_YYYYMMDD_HHMMSS` in UTC, as the runbook names them; a pre-restore snapshot is
 * `<db>_prerestore_…`, so that it never takes the id of a backup started in the same second.
 */
export function backupId(database: string, at: Date, type: BackupType = 'full'): string {
  return `${database}_${type === 'pre-restore' ? 'prerestore' : 'backup'}_${timestamp(at)}`;
}

export function parseBackupId(id: string): { database: string; at: Date } | undefined {
  const m = ID_PATTERN.exec(id);
  if (!m) return undefined;
  const [, database, d, t] = m as unknown as [string, string, string, string];
  const at = new Date(
    Date.UTC(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8), +t.slice(0, 2), +t.slice(2, 4), +t.slice(4, 6)),
  );
  return Number.isNaN(at.getTime()) ? undefined : { database, at };
}

/** The dump file: a pg_dump custom archive (`.dump`), compressed (`.zst`/`.gz`), encrypted (`.enc`). */
export function dataKey(database: string, id: string, compressionExt: string): string {
  return `${database}/${id}.dump.${compressionExt}.enc`;
}

export const MANIFEST_SUFFIX = '.manifest.json';

export function manifestKey(database: string, id: string): string {
  return `${database}/${id}${MANIFEST_SUFFIX}`;
}

/** Written once the dump is stored, before verification; never listed as a backup. */
export function pendingKey(database: string, id: string): string {
  return `${database}/${id}.pending.json`;
}

const DATA_SUFFIX = /\.dump\.(zst|gz)\.enc$/;

/** The id part of a data object's name (`…/<id>.dump.zst.enc`), or undefined for other names. */
export function idOfDataKey(key: string): string | undefined {
  const base = key.slice(key.lastIndexOf('/') + 1);
  return DATA_SUFFIX.test(base) ? base.replace(DATA_SUFFIX, '') : undefined;
}

/** An object beside the data object, named after the backup: its manifest or key envelope. */
export function siblingKey(dataObjectKey: string, suffix: string): string {
  return dataObjectKey.replace(DATA_SUFFIX, suffix);
}

export const KEY_ENVELOPE_SUFFIX = '.key.json';
