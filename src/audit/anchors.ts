import { errorMessage } from '../errors';
import type { BackupStorage } from '../storage/storage';
import type { AuditKey } from './audit-key';

/**
 * Anchors: after each append, the new head of the audit chain (its seq and MAC) is written to every
 * offsite destination as a small object that is never replaced (putIfAbsent, under Object Lock where
 * the destination has it). Cutting lines off the end of the log, or dropping one and re-keying
 * nothing, then contradicts an anchor the repository's writer cannot remove.
 */

/** `_`: no database name starts with it, so no catalog listing meets these objects. */
export const ANCHOR_PREFIX = '_audit/anchors/';

/** The newest line of the chain. Not a secret: a MAC says nothing about the key. */
export interface AuditHead {
  seq: number;
  mac: string;
}

export interface Anchor extends AuditHead {
  anchorVersion: 1;
  /** The audit key's id (a fingerprint). */
  auditKey: string;
  time: string;
  /** MAC of the fields above: an anchor planted by someone without the key is recognised and ignored. */
  anchorMac: string;
}

/** Zero-padded, so that the names sort by seq. */
export function anchorKey(seq: number): string {
  return `${ANCHOR_PREFIX}${String(seq).padStart(12, '0')}.json`;
}

const anchorText = (a: Pick<Anchor, 'auditKey' | 'seq' | 'mac'>) => `lifeline/audit-anchor\n${a.auditKey}\n${a.seq}\n${a.mac}`;

export function makeAnchor(key: AuditKey, head: AuditHead, time = new Date().toISOString()): Anchor {
  const body = { auditKey: key.id, seq: head.seq, mac: head.mac };
  return { anchorVersion: 1, ...body, time, anchorMac: key.mac(anchorText(body)) };
}

export interface AnchorOutcome {
  /** Destinations that hold the anchor now. */
  written: string[];
  /**
   * Destinations that could not be reached (the audited action goes on; the failure is reported),
   * or that already hold another MAC for this seq: the log was cut back and grew again.
   */
  failed: Array<{ destination: string; error: string }>;
}

const ANCHOR_TIMEOUT_MS = 15_000;

function withTimeout<T>(what: string, promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function writeAnchor(storage: BackupStorage, anchor: Anchor): Promise<void> {
  const key = anchorKey(anchor.seq);
  if (await storage.putIfAbsent(key, Buffer.from(JSON.stringify(anchor, null, 2) + '\n'))) return;
  // Already there: a retried append wrote it (same MAC), or the log was cut back and grew again.
  const existing = parseAnchor(await storage.get(key));
  if (existing?.mac !== anchor.mac) {
    throw new Error(`${storage.describe(key)} already anchors seq ${anchor.seq} with another MAC: the audit log was cut back and rewritten; run \`lifeline audit verify\``);
  }
}

/** Best effort, all destinations at once: an unreachable destination is named in `failed`, never thrown. */
export async function writeAnchors(storages: BackupStorage[], anchor: Anchor, timeoutMs = ANCHOR_TIMEOUT_MS): Promise<AnchorOutcome> {
  const outcome: AnchorOutcome = { written: [], failed: [] };
  await Promise.all(
    storages.map(async (storage) => {
      try {
        await withTimeout(`writing ${storage.describe(anchorKey(anchor.seq))}`, writeAnchor(storage, anchor), timeoutMs);
        outcome.written.push(storage.name);
      } catch (err) {
        outcome.failed.push({ destination: storage.name, error: errorMessage(err) });
      }
    }),
  );
  return outcome;
}

export interface DestinationAnchors {
  destination: string;
  /** The authentic anchors, by seq. */
  anchors: Anchor[];
  /** Anchors that are not authentic (planted or damaged). */
  rejected: string[];
  /** Why the destination could not be read. */
  error?: string;
}

function parseAnchor(body: Buffer | undefined): Anchor | undefined {
  try {
    const a = JSON.parse(body?.toString('utf8') ?? '') as Anchor;
    return a.anchorVersion === 1 && Number.isInteger(a.seq) && typeof a.mac === 'string' && typeof a.auditKey === 'string' ? a : undefined;
  } catch {
    return undefined;
  }
}

const PARALLEL_READS = 8;

/**
 * Every anchor of a destination that `key` authenticates. All of them, not only the newest: a log
 * cut back and grown again has a newest line that matches its anchor, but older anchors that do
 * not. Without a key (the key file is gone) anchors cannot be authenticated and all well-formed
 * ones are taken: a planted anchor can then raise a false alarm, never hide a truncation.
 */
export async function readAnchors(storage: BackupStorage, key: AuditKey | undefined): Promise<DestinationAnchors> {
  const result: DestinationAnchors = { destination: storage.name, anchors: [], rejected: [] };
  try {
    const keys = (await storage.list(ANCHOR_PREFIX)).map((o) => o.key).filter((k) => /^_audit\/anchors\/\d{12}\.json$/.test(k));
    let next = 0;
    const reader = async () => {
      while (next < keys.length) {
        const objectKey = keys[next++]!;
        const anchor = parseAnchor(await storage.get(objectKey));
        const authentic =
          anchor && anchorKey(anchor.seq) === objectKey && (!key || (anchor.auditKey === key.id && key.checks(anchorText(anchor), anchor.anchorMac)));
        if (authentic) result.anchors.push(anchor);
        else result.rejected.push(storage.describe(objectKey));
      }
    };
    await Promise.all(Array.from({ length: PARALLEL_READS }, reader));
    result.anchors.sort((a, b) => a.seq - b.seq);
  } catch (err) {
    result.error = errorMessage(err);
  }
  return result;
}
