import { z } from 'zod';
import { DumpRecordSchema, parseManifest, type DumpRecord } from '../catalog/manifest';
import { idOfDataKey, manifestKey, pendingKey } from '../catalog/naming';
import { LifelineError } from '../errors';
import type { BackupStorage } from '../storage/storage';

type Owner = { workflowId: string; runId: string } | undefined;

/**
 * The pending record (`<id>.pending.json`) is written before any byte of the dump: it claims the
 * backup id for one workflow. Once the dump is stored it is replaced by the dump's record. So an
 * uncatalogued data object always has an owner, and a retry of that owner may discard it (a disk
 * that filled up after the data was published no longer blocks every retry).
 */
const ClaimSchema = z.object({
  claim: z.literal('backup-id'),
  id: z.string(),
  database: z.string(),
  claimedAt: z.string(),
  workflow: z.object({ workflowId: z.string(), runId: z.string() }).optional(),
});

function idTaken(id: string, owner: string | undefined): LifelineError {
  return new LifelineError('ObjectExists', `backup id ${id} is already taken by ${owner ?? 'another run'}`, {
    hint: 'two backups of one database started in the same second; run the backup again',
  });
}

const sameOwner = (a: Owner, b: Owner) => a?.workflowId === b?.workflowId;

/**
 * Returns the record of a dump this workflow already finished (a retry after its worker died),
 * or claims the id for it and removes what its earlier attempts left: temporary objects, and a
 * data object or parts they published but never recorded. Another workflow's id is refused; a catalogued
 * backup is never touched.
 */
export async function claimBackupId(storage: BackupStorage, database: string, id: string, owner: Owner): Promise<DumpRecord | undefined> {
  const catalogued = await storage.get(manifestKey(database, id));
  if (catalogued) {
    const manifest = parseManifest(catalogued.toString('utf8'), storage.describe(manifestKey(database, id)));
    if (owner && sameOwner(manifest.workflow, owner)) return DumpRecordSchema.parse(manifest);
    throw idTaken(id, manifest.workflow?.workflowId);
  }
  const previous = await storage.get(pendingKey(database, id));
  if (previous) {
    const json: unknown = JSON.parse(previous.toString('utf8'));
    const record = DumpRecordSchema.safeParse(json);
    const holder = record.success ? record.data.workflow : ClaimSchema.parse(json).workflow;
    if (!sameOwner(holder, owner)) throw idTaken(id, holder?.workflowId);
    if (record.success && (await storage.stat(record.data.object.key))) return record.data;
  } else {
    const claim: z.infer<typeof ClaimSchema> = { claim: 'backup-id', id, database, claimedAt: new Date().toISOString(), ...(owner && { workflow: owner }) };
    // putIfAbsent is atomic: of two runs given the same id, one claims it.
    if (!(await storage.putIfAbsent(pendingKey(database, id), Buffer.from(JSON.stringify(claim, null, 2))))) throw idTaken(id, undefined);
  }
  await storage.removeIncomplete(`${database}/${id}`);
  for (const object of await storage.list(`${database}/${id}.`)) {
    if (isDumpObjectOf(object.key, id)) await storage.delete(object.key);
  }
  return undefined;
}

/** The data object or a part (`<id>.dump.<ext>.enc`, `<id>.part.<name>.<ext>.enc`) of backup `id`: not its claim or key envelope. */
function isDumpObjectOf(key: string, id: string): boolean {
  const base = key.slice(key.lastIndexOf('/') + 1);
  return idOfDataKey(key) === id || (base.startsWith(`${id}.part.`) && base.endsWith('.enc'));
}

/** Replaces the claim with the stored dump's record, which verification and cataloguing build on. */
export async function recordDump(storage: BackupStorage, record: DumpRecord): Promise<void> {
  await storage.replace(pendingKey(record.database, record.id), Buffer.from(JSON.stringify(record, null, 2)));
}
