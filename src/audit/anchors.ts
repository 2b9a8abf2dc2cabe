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

/**
 * Zero-padded, so that the names sort by seq. A chain started by `lifeline audit reset` (`chain`:
 * its key id) anchors apart, as the seqs of the lost chain stay taken under Object Lock.
 */
export function anchorKey(seq: number, chain?: string): string {
  return `${anchorPrefix(chain)}${String(seq).padStart(12, '0')}.json`;
}

export function anchorPrefix(chain?: string): string {
  return chain ? `${ANCHOR_PREFIX}${chain}/` : ANCHOR_PREFIX;
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
  failed: Array<{ destination: string; error: string; tampered?: true }>;
}

/** The seq is anchored already with another MAC: the log was cut back, or replaced with its key, and grew again. */
class SeqTakenError extends Error {}

export const ANCHOR_TIMEOUT_MS = 15_000;

export function withTimeout<T>(what: string, promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function writeAnchor(storage: BackupStorage, anchor: Anchor, chain: string | undefined): Promise<void> {
  const key = anchorKey(anchor.seq, chain);
  if (await storage.putIfAbsent(key, Buffer.from(JSON.stringify(anchor, null, 2) + '\n'))) return;
  // Already there: a retried append wrote it (same MAC), or the log was cut back and grew again.
  const existing = parseAnchor(await storage.get(key));
  if (existing?.mac !== anchor.mac) {
    const other = existing && existing.auditKey !== anchor.auditKey ? ` under another audit key (${existing.auditKey}, ${existing.time})` : '';
    throw new SeqTakenError(
      `${storage.describe(key)} already anchors seq ${anchor.seq} with another MAC${other}: the audit log was cut back or replaced and rewritten; run \`lifeline audit verify\``,
    );
  }
}

/** Best effort, all destinations at once: an unreachable destination is named in `failed`, never thrown. */
export async function writeAnchors(storages: BackupStorage[], anchor: Anchor, chain?: string, timeoutMs = ANCHOR_TIMEOUT_MS): Promise<AnchorOutcome> {
  const outcome: AnchorOutcome = { written: [], failed: [] };
  await Promise.all(
    storages.map(async (storage) => {
      try {
        await withTimeout(`writing ${storage.describe(anchorKey(anchor.seq, chain))}`, writeAnchor(storage, anchor, chain), timeoutMs);
        outcome.written.push(storage.name);
      } catch (err) {
        outcome.failed.push({ destination: storage.name, error: errorMessage(err), ...(err instanceof SeqTakenError && { tampered: true as const }) });
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
  /**
   * Well-formed anchors under another audit key id, by seq. The audit key never changes (a master
   * key rotation re-wraps the same key), so these are the anchors of a chain whose log and key
   * file were replaced: the history they anchor is missing here.
   */
  foreign: Anchor[];
  /** Why the destination could not be read. */
  error?: string;
}

function parseAnchor(body: Buffer | undefined): Anchor | undefined {
  try {
    const a = JSON.parse(body?.toString('utf8') ?? '') as Anchor;
    const hex = (v: unknown, length: number) => typeof v === 'string' && v.length === length && /^[0-9a-f]+$/.test(v);
    // A key id is 16 hex digits, a MAC 64: anything else was not written by Lifeline.
    return a.anchorVersion === 1 && Number.isInteger(a.seq) && a.seq > 0 && hex(a.mac, 64) && hex(a.auditKey, 16) && hex(a.anchorMac, 64) ? a : undefined;
  } catch {
    return undefined;
  }
}

const PARALLEL_READS = 8;

/**
 * Every anchor of a destination that `key` authenticates. All of them, not only the newest: a log
 * cut back and grown again has a newest line that matches its anchor, but older anchors that do
 * not. Without a key (the key file is gone) anchors cannot be authenticated and all well-formed
 * ones are taken: a planted anchor can then raise a false alarm, never hide a truncation. For the
 * same reason a well-formed anchor under another key id is `foreign` (history missing), not ignored.
 */
export async function readAnchors(storage: BackupStorage, key: AuditKey | undefined, chain?: string): Promise<DestinationAnchors> {
  const result: DestinationAnchors = { destination: storage.name, anchors: [], rejected: [], foreign: [] };
  const prefix = anchorPrefix(chain);
  try {
    const keys = (await storage.list(prefix)).map((o) => o.key).filter((k) => k.startsWith(prefix) && /^\d{12}\.json$/.test(k.slice(prefix.length)));
    let next = 0;
    const reader = async () => {
      while (next < keys.length) {
        const objectKey = keys[next++]!;
        const anchor = parseAnchor(await storage.get(objectKey));
        const wellFormed = anchor && anchorKey(anchor.seq, chain) === objectKey;
        if (wellFormed && key && anchor.auditKey !== key.id) result.foreign.push(anchor);
        else if (wellFormed && (!key || key.checks(anchorText(anchor), anchor.anchorMac))) result.anchors.push(anchor);
        else result.rejected.push(storage.describe(objectKey));
      }
    };
    await Promise.all(Array.from({ length: PARALLEL_READS }, reader));
    result.anchors.sort((a, b) => a.seq - b.seq);
    result.foreign.sort((a, b) => a.seq - b.seq);
  } catch (err) {
    result.error = errorMessage(err);
  }
  return result;
}

/**
 * The anchors of every chain a destination holds: the first chain's and those anchored apart
 * (started by `lifeline audit reset`), merged as one answer.
 */
export async function readAllAnchors(storage: BackupStorage, key: AuditKey | undefined): Promise<DestinationAnchors> {
  let chains: string[];
  try {
    const ids = (await storage.list(ANCHOR_PREFIX)).map((o) => /^_audit\/anchors\/([0-9a-f]{16})\//.exec(o.key)?.[1]);
    chains = [...new Set(ids.filter((id): id is string => id !== undefined))];
  } catch (err) {
    return { destination: storage.name, anchors: [], rejected: [], foreign: [], error: errorMessage(err) };
  }
  const parts = await Promise.all([undefined, ...chains].map((chain) => readAnchors(storage, key, chain)));
  const bySeq = (a: Anchor, b: Anchor) => a.seq - b.seq;
  return {
    destination: storage.name,
    anchors: parts.flatMap((p) => p.anchors).sort(bySeq),
    rejected: parts.flatMap((p) => p.rejected),
    foreign: parts.flatMap((p) => p.foreign).sort(bySeq),
    error: parts.find((p) => p.error)?.error,
  };
}
