import { errorMessage } from '../errors';
import type { BackupStorage } from '../storage/storage';
import type { Anchor } from './anchors';
import type { AuditKey } from './audit-key';

/**
 * `lifeline audit reset --confirm-lost-history`: when no copy of audit.jsonl and audit-key.json
 * survives, a new chain may start, but the loss is recorded offsite, write-once, beside the lost
 * chain's anchors, and `audit verify` names it ever after. The record is MACed under the new key:
 * one planted by someone without it excuses nothing.
 */
export const RESET_PREFIX = '_audit/resets/';

export interface LostChain {
  auditKey: string;
  fromSeq: number;
  toSeq: number;
  /** When its newest anchor was written. */
  newest: string;
}

export interface ResetRecord {
  resetVersion: 1;
  /** The new chain's audit key id. */
  auditKey: string;
  lost: LostChain[];
  actor: string;
  time: string;
  resetMac: string;
}

export const resetKey = (auditKeyId: string) => `${RESET_PREFIX}${auditKeyId}.json`;

const resetText = (r: Omit<ResetRecord, 'resetMac'>) => `lifeline/audit-reset\n${JSON.stringify(r)}`;

/** The chains the anchors belong to, each with the seqs it anchored. */
export function lostChains(anchors: Anchor[]): LostChain[] {
  const chains = new Map<string, LostChain>();
  for (const a of anchors) {
    const c = chains.get(a.auditKey) ?? { auditKey: a.auditKey, fromSeq: a.seq, toSeq: a.seq, newest: a.time };
    chains.set(a.auditKey, { ...c, fromSeq: Math.min(c.fromSeq, a.seq), toSeq: Math.max(c.toSeq, a.seq), newest: a.time > c.newest ? a.time : c.newest });
  }
  return [...chains.values()];
}

export function makeResetRecord(key: AuditKey, lost: LostChain[], actor: string, time = new Date().toISOString()): ResetRecord {
  const body = { resetVersion: 1 as const, auditKey: key.id, lost, actor, time };
  return { ...body, resetMac: key.mac(resetText(body)) };
}

/** Writes the record to every destination; throws naming those that did not take it. */
export async function writeResetRecord(storages: BackupStorage[], record: ResetRecord): Promise<void> {
  const body = Buffer.from(JSON.stringify(record, null, 2) + '\n');
  const failed: string[] = [];
  await Promise.all(
    storages.map(async (s) => {
      try {
        // Already there: an earlier attempt of this reset (same key) wrote it.
        if (!(await s.putIfAbsent(resetKey(record.auditKey), body)) && !(await readResetRecord(s, undefined, record.auditKey))) failed.push(`${s.name}: a malformed record is in the way`);
      } catch (err) {
        failed.push(`${s.name}: ${errorMessage(err)}`);
      }
    }),
  );
  if (failed.length) throw new Error(`the reset record ${resetKey(record.auditKey)} was not written to ${failed.join('; ')}`);
}

/** The destination's reset record for `key` if it is authentic (with `key` undefined: only well-formed). */
export async function readResetRecord(storage: BackupStorage, key: AuditKey | undefined, id = key?.id): Promise<ResetRecord | undefined> {
  if (!id) return undefined;
  let record: ResetRecord;
  try {
    record = JSON.parse((await storage.get(resetKey(id)))?.toString('utf8') ?? '') as ResetRecord;
  } catch {
    return undefined;
  }
  if (record?.resetVersion !== 1 || record.auditKey !== id || !Array.isArray(record.lost)) return undefined;
  const { resetMac, ...body } = record;
  return !key || key.checks(resetText(body), resetMac) ? record : undefined;
}

/** Whether a reset declared the history this anchor belongs to lost. */
export function declaredLost(record: ResetRecord | undefined, anchor: Anchor): boolean {
  return !!record?.lost.some((c) => c.auditKey === anchor.auditKey && anchor.seq >= c.fromSeq && anchor.seq <= c.toSeq);
}
