import { errorMessage, LifelineError } from '../errors';
import { logger } from '../logger';
import type { BackupStorage } from '../storage/storage';
import { ANCHOR_TIMEOUT_MS, readAllAnchors, withTimeout, type Anchor } from './anchors';

/**
 * The offsite anchors outlive the repository (Object Lock): they remember the audit key and the
 * heads of the chain. Deleting `audit.jsonl` together with `audit-key.json` must not start a
 * fresh chain that passes for the whole history.
 */

/** "3 anchor(s), seq 1–3, newest 2026-11-28T02:00:00Z, under audit key 0123…" for messages. */
export function describeAnchors(anchors: Anchor[]): string {
  const byKey = new Map<string, Anchor[]>();
  for (const a of anchors) byKey.set(a.auditKey, [...(byKey.get(a.auditKey) ?? []), a]);
  return [...byKey]
    .map(([id, list]) => `${list.length} anchor(s), seq ${list[0]!.seq}–${list.at(-1)!.seq} (newest written ${list.at(-1)!.time}), under audit key ${id}`)
    .join('; ');
}

export const RESTORE_HINT =
  'restore audit.jsonl and audit-key.json (both, from the same copy of the repository: a file backup or snapshot) into the audit folder, then run `lifeline audit verify`; only if no copy exists: `lifeline audit reset --confirm-lost-history` (recorded offsite)';

/**
 * Called before a new audit key is made (no key file, no keyed line): refuses while any offsite
 * destination holds anchors, which only an earlier chain can have written. A destination that
 * cannot be read does not hold up the audited action (a backup while the offsite is down): if it
 * holds an earlier chain, the new chain's anchor writes are reported as tampering once it answers,
 * and `audit verify` fails on the anchors under the other key.
 */
export async function refuseOverAnchoredHistory(file: string, storages: BackupStorage[]): Promise<void> {
  const read = (s: BackupStorage) =>
    withTimeout(`reading the anchors in ${s.name}`, readAllAnchors(s, undefined), ANCHOR_TIMEOUT_MS).catch((err) => ({ destination: s.name, anchors: [], error: errorMessage(err) }));
  for (const found of await Promise.all(storages.map(read))) {
    if (found.error) logger.warn({ destination: found.destination }, `making a new audit key for ${file} without the anchors in ${found.destination} (unreadable: ${found.error})`);
    if (found.anchors.length) {
      throw new LifelineError(
        'AuditHistoryMissing',
        `there is no audit-key.json beside ${file} and no keyed line in it, but ${found.destination} holds ${describeAnchors(found.anchors)}: the audit history was deleted or lost; no new audit key is made over it`,
        { hint: RESTORE_HINT },
      );
    }
  }
}
