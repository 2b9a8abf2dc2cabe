import { Catalog, removeBackupObjects } from '../catalog/catalog';
import { manifestKey } from '../catalog/naming';
import { findDatabase, type LifelineConfig } from '../config/config';
import { allStorages, storageNamed } from '../backup/repository';
import { keyringFor } from '../crypto/keys';
import type { BackupStorage } from '../storage/storage';
import { planRetention, type RetentionPlan } from './policy';

/** One database in one storage: retention is planned and applied per place. */
export interface RetentionTarget {
  database: string;
  storage: string;
}

export interface TargetPlan extends RetentionTarget {
  location: string;
  keepDays: number;
  total: number;
  plan: RetentionPlan;
  /** More than the configured share of the backups there would go: a person decides. */
  needsApproval: boolean;
  /**
   * Manifests that fail authentication (no MAC, altered): not counted, never kept as "the newest",
   * never deleted; each says why, for a person to look at.
   */
  untrusted: Array<{ id: string; error: string }>;
}

/** A legal hold is a small object beside the backup: `<db>/<id>.hold.json`. */
export const HOLD_SUFFIX = '.hold.json';

export function retentionTargets(config: LifelineConfig, databases?: string[]): RetentionTarget[] {
  return config.databases
    .filter((db) => !databases?.length || databases.includes(db.name))
    .flatMap((db) => allStorages(config, db).map((s) => ({ database: db.name, storage: s.name })));
}

async function heldIds(storage: BackupStorage, database: string): Promise<Set<string>> {
  const holds = (await storage.list(`${database}/`)).filter((o) => o.key.endsWith(HOLD_SUFFIX));
  return new Set(holds.map((o) => o.key.slice(database.length + 1, -HOLD_SUFFIX.length)));
}

export async function planTarget(
  config: LifelineConfig,
  target: RetentionTarget,
  options: { inUse: string[]; olderThanDays?: number; now?: Date },
): Promise<TargetPlan> {
  const db = findDatabase(config, target.database);
  const storage = storageNamed(config, db, target.storage);
  const destination = config.destinations.find((d) => d.name === target.storage);
  const keepDays = options.olderThanDays ?? destination?.retentionDays ?? db.retention.keepDays;
  // Only authentic manifests decide: a forged "newest" must not displace (and so delete) the real one.
  const { trusted: manifests, untrusted } = await new Catalog(storage).authenticated(db.name, keyringFor(config));
  const plan = planRetention(
    manifests.map((m) => ({ id: m.id, type: m.type, startedAt: m.startedAt })),
    { ...db.retention, keepDays },
    { now: options.now ?? new Date(), storage: storage.name, held: await heldIds(storage, db.name), inUse: new Set(options.inUse) },
  );
  return {
    ...target,
    location: storage.location,
    keepDays,
    total: manifests.length,
    plan,
    needsApproval: manifests.length > 0 && plan.delete.length / manifests.length > db.retention.approvalShare,
    untrusted: untrusted.map((u) => ({ id: u.manifest.id, error: u.error.message })),
  };
}

/**
 * Deletes one backup from one place: the manifest first (from then on it is not a backup), then
 * the data object and whatever else bears its id. Returns what was removed.
 */
export async function deleteBackup(config: LifelineConfig, target: RetentionTarget, id: string): Promise<string[]> {
  const storage = storageNamed(config, findDatabase(config, target.database), target.storage);
  const removed: string[] = [];
  const manifest = manifestKey(target.database, id);
  if (await storage.stat(manifest)) {
    await storage.delete(manifest);
    removed.push(storage.describe(manifest));
  }
  return [...removed, ...(await removeBackupObjects(storage, target.database, id))];
}

/** Puts a backup under legal hold (or releases it) in every place that keeps it. */
export async function setLegalHold(config: LifelineConfig, database: string, id: string, hold: { by: string; reason: string } | undefined): Promise<string[]> {
  const places: string[] = [];
  for (const storage of allStorages(config, findDatabase(config, database))) {
    if (!(await new Catalog(storage).find(id))) continue;
    const key = `${database}/${id}${HOLD_SUFFIX}`;
    if (hold) await storage.replace(key, Buffer.from(JSON.stringify({ backupId: id, ...hold, at: new Date().toISOString() }, null, 2) + '\n'));
    else await storage.delete(key);
    places.push(storage.describe(key));
  }
  return places;
}
