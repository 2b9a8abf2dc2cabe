import { statfs } from 'node:fs/promises';
import { catalogFor } from '../backup/repository';
import { keyringFor } from '../crypto/keys';
import type { DatabaseConfig, LifelineConfig } from '../config/config';
import type { Notice } from '../notify';

/**
 * The alert conditions that are checks on state (the others are raised where they happen: a failed
 * backup, a failed replication, a restore waiting for approval). Each returns the notice to deliver,
 * opening or clearing a lasting condition.
 */

/** A backup whose dump is more than ±threshold% off the previous backup of the same type. */
export async function sizeAnomaly(config: LifelineConfig, db: DatabaseConfig, backupId: string): Promise<Notice | undefined> {
  const manifests = await catalogFor(db).list(db.name);
  const index = manifests.findIndex((m) => m.id === backupId);
  const current = manifests[index];
  const previous = manifests.slice(0, Math.max(index, 0)).reverse().find((m) => m.type === current?.type);
  if (!current || !previous || previous.sizes.rawBytes === 0) return undefined;
  const change = ((current.sizes.rawBytes - previous.sizes.rawBytes) / previous.sizes.rawBytes) * 100;
  if (Math.abs(change) <= config.alerts.sizeAnomalyPercent) return undefined;
  return {
    severity: 'warning',
    event: 'backup.size-anomaly',
    database: db.name,
    backupId,
    dedupKey: `size:${backupId}`,
    title: `Backup ${backupId} is ${change > 0 ? '+' : ''}${change.toFixed(0)}% the size of the previous one`,
    text:
      `${current.type} dump ${current.sizes.rawBytes} bytes, previous ${previous.id} ${previous.sizes.rawBytes} bytes ` +
      `(threshold ±${config.alerts.sizeAnomalyPercent}%). Check for a bulk delete, a runaway table or a failed import.`,
  };
}

/** Free space of the local repository's filesystem below BACKUP_MIN_FREE_PERCENT (opens), or back above it (clears). */
export async function lowSpace(config: LifelineConfig, db: DatabaseConfig): Promise<Notice> {
  const fs = await statfs(db.backupDir);
  const freePercent = (fs.bavail / fs.blocks) * 100;
  const key = `space:${db.backupDir}`;
  if (freePercent >= config.alerts.minFreePercent) {
    return { severity: 'info', event: 'storage.space-ok', database: db.name, clears: key, title: `Backup storage ${db.backupDir} has space again`, text: `${freePercent.toFixed(1)}% free.` };
  }
  return {
    severity: 'warning',
    event: 'storage.low-space',
    database: db.name,
    dedupKey: key,
    title: `Backup storage ${db.backupDir} is low on space: ${freePercent.toFixed(1)}% free`,
    text: `${(Number(fs.bavail) * Number(fs.bsize) / 2 ** 30).toFixed(1)} GiB free, below BACKUP_MIN_FREE_PERCENT=${config.alerts.minFreePercent}%. Free space or run \`lifeline cleanup --dry-run\` to see what retention would remove.`,
  };
}

export interface RpoCheck {
  database: string;
  newestVerifiedAt?: string;
  ageHours?: number;
  breached: boolean;
}

/** The newest verified backup older than the RPO target plus its grace (or none at all) opens a critical alert. */
export async function rpoCheck(config: LifelineConfig, db: DatabaseConfig, now = new Date()): Promise<{ check: RpoCheck; notice: Notice }> {
  // Pre-restore snapshots are not the schedule's backups: they do not count toward the RPO.
  // Only an authentic manifest counts: a forged "newest" must not silence the alert.
  const newest = await catalogFor(db).newestAuthentic(db.name, keyringFor(config), (m) => m.type !== 'pre-restore');
  const ageHours = newest ? (now.getTime() - Date.parse(newest.startedAt)) / 3_600_000 : undefined;
  const limit = config.alerts.rpoHours + config.alerts.rpoGraceHours;
  const breached = ageHours === undefined || ageHours > limit;
  const key = `rpo:${db.name}`;
  const check = { database: db.name, newestVerifiedAt: newest?.startedAt, ageHours, breached };
  if (!breached) {
    return { check, notice: { severity: 'info', event: 'rpo.ok', database: db.name, clears: key, title: `RPO of ${db.name} met again`, text: `Newest verified backup ${newest!.id}, ${ageHours!.toFixed(1)} h old.` } };
  }
  return {
    check,
    notice: {
      severity: 'critical',
      event: 'rpo.breached',
      database: db.name,
      dedupKey: key,
      title: `RPO breached for ${db.name}: ${newest ? `newest verified backup is ${ageHours!.toFixed(1)} h old` : 'no verified backup'}`,
      text: `Target ${config.alerts.rpoHours} h (+${config.alerts.rpoGraceHours} h grace). ${newest ? `Newest: ${newest.id}.` : ''} Check the schedule (\`lifeline schedule list\`) and the last backup run, then \`lifeline backup --db ${db.name} --wait\`.`,
    },
  };
}
