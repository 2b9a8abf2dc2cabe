import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { destinationStorage } from '../backup/repository';
import type { LifelineConfig } from '../config/config';
import { keyringFor } from '../crypto/keys';
import { LifelineError } from '../errors';
import { logger } from '../logger';
import type { BackupStorage } from '../storage/storage';
import { withFileLock } from '../storage/file-lock';
import { auditKeyFile, auditKeySource, type AuditKey, type AuditKeySource } from './audit-key';
import { makeAnchor, readAnchors, writeAnchors, type AnchorOutcome, type AuditHead } from './anchors';

export type { AnchorOutcome, AuditHead } from './anchors';

/**
 * The audit trail: one JSON line per operation, each carrying an HMAC-SHA256 (under the audit key,
 * see audit-key.ts) of its content and of the MAC of the line before it. An edited, removed,
 * inserted or reordered line fails `verify()`, and so does a chain recomputed without the key; a
 * cut-off tail contradicts the anchors kept offsite (anchors.ts) and the heads in Temporal history.
 *
 * Lines written before the chain was keyed (`prevHash`/`hash`, plain SHA-256) stay a legacy prefix,
 * checked as before; the first keyed line's `prevMac` is the legacy head's hash, so once it is
 * written the legacy prefix cannot be rewritten either.
 */
export interface AuditEvent {
  /** Makes appends idempotent: a retried step that already wrote its entry does not write it twice. */
  eventId: string;
  /** A person's name, or `schedule`. */
  actor: string;
  /** backup, verification, replication, restore.request, restore.approved, deletion, key.rotation, drill, … */
  action: string;
  status: string;
  database?: string;
  backupId?: string;
  sizeBytes?: number;
  location?: string;
  checksum?: string;
  details?: Record<string, unknown>;
  /** ISO time; default now. */
  time?: string;
}

export interface AuditEntry extends Omit<AuditEvent, 'time'> {
  seq: number;
  time: string;
  /** Keyed lines: the audit key's id, the previous line's MAC (or legacy hash), this line's MAC. */
  auditKey?: string;
  prevMac?: string;
  mac?: string;
  /** Legacy lines (before the chain was keyed): the previous line's hash and this line's SHA-256. */
  prevHash?: string;
  hash?: string;
}

export const GENESIS_HASH = '0'.repeat(64);

const isKeyed = (entry: AuditEntry) => entry.mac !== undefined;
/** What the next line chains to. */
const chainValue = (entry: AuditEntry | undefined) => (entry ? (entry.mac ?? entry.hash ?? '') : GENESIS_HASH);

function legacyHash(body: Omit<AuditEntry, 'hash'>): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('hex');
}

export interface AnchorCheck {
  destination: string;
  /** How many authentic anchors were compared with the log, and the newest one's seq. */
  checked: number;
  newestSeq?: number;
  /** Anchors there that are not authentic (planted or damaged); ignored. */
  rejected: string[];
  /** Why the destination could not be read (the check is then incomplete). */
  error?: string;
}

export interface ChainCheck {
  ok: boolean;
  entries: number;
  /** The first line that breaks the chain (1-based) and why; for a cut-off tail, the missing seqs. */
  broken?: { line: number; reason: string; missing?: { from: number; to: number } };
  /** The head's MAC (or, for a log not keyed yet, its hash). */
  lastHash: string;
  head?: AuditHead;
  /** Where the keyed chain starts; absent while the log was never keyed. */
  keyedFromSeq?: number;
  anchors: AnchorCheck[];
  /** How many heads recorded in Temporal history were compared, when asked to. */
  recordedHeads?: number;
  /** What limits the check: no destination to anchor in, a destination that could not be read, … */
  warnings: string[];
}

export interface Recorded {
  entry: AuditEntry;
  head: AuditHead;
  anchors: AnchorOutcome;
}

export class AuditLog {
  /**
   * `keys` is needed to write and to verify (reading entries needs none); anchors go to each of
   * `anchorStores` (the offsite destinations).
   */
  constructor(
    readonly file: string,
    private readonly keys?: AuditKeySource,
    private readonly anchorStores: BackupStorage[] = [],
  ) {}

  private async lines(): Promise<string[]> {
    try {
      return (await fs.readFile(this.file, 'utf8')).split('\n').filter((l) => l !== '');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  private parse(lines: string[]): AuditEntry[] {
    return lines.map((l, i) => {
      try {
        return JSON.parse(l) as AuditEntry;
      } catch {
        throw new LifelineError('AuditCorrupt', `audit log ${this.file} line ${i + 1} is not JSON`, { hint: 'run `lifeline audit verify`' });
      }
    });
  }

  /** Every entry, in order. */
  async entries(): Promise<AuditEntry[]> {
    return this.parse(await this.lines());
  }

  private requireKeys(): AuditKeySource {
    if (!this.keys) throw new LifelineError('AuditKeyMissing', `no audit key source for ${this.file}`, { hint: 'open the log with auditLogOf(config)' });
    return this.keys;
  }

  async append(event: AuditEvent): Promise<AuditEntry> {
    return (await this.record(event)).entry;
  }

  /**
   * Appends (once per eventId) and anchors the new head offsite. An unreachable destination does
   * not fail the audited action: it is logged and returned in `anchors.failed`.
   */
  async record(event: AuditEvent): Promise<Recorded> {
    const keys = this.requireKeys();
    // The key is opened before the lock (it may take a KMS call); where it starts is read again under the lock.
    const seen = this.parse(await this.lines());
    const key = await keys.forWriting((seen.at(-1)?.seq ?? 0) + 1, seen.some(isKeyed));
    const entry = await withFileLock(this.file, async () => {
      const entries = this.parse(await this.lines());
      // Idempotence: look back over the recent entries only.
      const earlier = entries.slice(-200).find((e) => e.eventId === event.eventId);
      if (earlier) return earlier;
      const last = entries.at(-1);
      if (last && isKeyed(last) && last.auditKey !== key.id) {
        throw new LifelineError('AuditKeyMismatch', `the last line of ${this.file} was written under audit key ${last.auditKey}, but ${keys.file} holds ${key.id}`, {
          hint: 'restore the audit-key.json the log was written with; run `lifeline audit verify`',
        });
      }
      const { time, ...rest } = event;
      const body: Omit<AuditEntry, 'mac'> = {
        seq: (last?.seq ?? 0) + 1,
        time: time ?? new Date().toISOString(),
        ...rest,
        auditKey: key.id,
        prevMac: chainValue(last),
      };
      const written: AuditEntry = { ...body, mac: key.mac(JSON.stringify(body)) };
      const handle = await fs.open(this.file, 'a', 0o600);
      try {
        await handle.write(JSON.stringify(written) + '\n');
        await handle.sync();
      } finally {
        await handle.close();
      }
      return written;
    });
    const head = { seq: entry.seq, mac: chainValue(entry) };
    const anchors: AnchorOutcome = isKeyed(entry) ? await writeAnchors(this.anchorStores, makeAnchor(key, head)) : { written: [], failed: [] };
    for (const f of anchors.failed) logger.warn({ destination: f.destination, seq: head.seq }, `audit anchor for seq ${head.seq} not written to ${f.destination}: ${f.error}`);
    return { entry, head, anchors };
  }

  /**
   * Checks every line's MAC (legacy lines: hash) and the sequence, then every authentic anchor in
   * every destination (and `recordedHeads`, the heads kept in Temporal history) against the file;
   * names the first line that was edited, removed, inserted, reordered or rewritten without the
   * key, or the seqs cut off the end.
   */
  async verify(options: { recordedHeads?: KnownHead[] } = {}): Promise<ChainCheck> {
    const keys = this.requireKeys();
    const lines = await this.lines();
    const key = await keys.open();
    const result: ChainCheck = { ok: true, entries: lines.length, lastHash: GENESIS_HASH, keyedFromSeq: key?.keyedFromSeq, anchors: [], warnings: [] };
    const chain = this.checkChain(lines, key, keys.file);
    result.lastHash = chain.head?.mac ?? GENESIS_HASH;
    result.head = chain.head;
    if (chain.broken) Object.assign(result, { ok: false, broken: chain.broken });

    if (!this.anchorStores.length) result.warnings.push('no offsite destination is configured: a cut-off tail can only be found from the heads in Temporal history');
    if (!key && lines.length) result.warnings.push(`the log is not keyed yet (no ${keys.file}): it is keyed from its next entry on`);
    for (const found of await Promise.all(this.anchorStores.map((s) => readAnchors(s, key)))) {
      result.anchors.push({ destination: found.destination, checked: found.anchors.length, newestSeq: found.anchors.at(-1)?.seq, rejected: found.rejected, error: found.error });
      if (found.error) result.warnings.push(`anchors in ${found.destination} could not be read: ${found.error}`);
      if (found.rejected.length) result.warnings.push(`${found.rejected.length} anchor(s) in ${found.destination} are not authentic and were ignored: ${found.rejected.slice(0, 3).join(', ')}`);
      const heads = found.anchors.map((a) => ({ ...a, from: `an anchor in ${found.destination}` }));
      const broken = compareWithHeads(lines, heads);
      if (broken && (!result.broken || broken.line < result.broken.line)) Object.assign(result, { ok: false, broken });
    }
    if (options.recordedHeads) {
      result.recordedHeads = options.recordedHeads.length;
      const broken = compareWithHeads(lines, options.recordedHeads);
      if (broken && (!result.broken || broken.line < result.broken.line)) Object.assign(result, { ok: false, broken });
    }
    return result;
  }

  private checkChain(lines: string[], key: AuditKey | undefined, keyFile: string): { head?: AuditHead; broken?: ChainCheck['broken'] } {
    let prev = GENESIS_HASH;
    let head: AuditHead | undefined;
    for (const [i, line] of lines.entries()) {
      const fail = (reason: string) => ({ head, broken: { line: i + 1, reason } });
      let entry: AuditEntry;
      try {
        entry = JSON.parse(line) as AuditEntry;
      } catch {
        return fail('not valid JSON');
      }
      const keyedFrom = key?.keyedFromSeq ?? Infinity;
      if (isKeyed(entry)) {
        const { mac, ...body } = entry;
        if (entry.prevMac !== prev) return fail(`its prevMac does not match line ${i}: a line before it was removed, inserted or reordered`);
        if (entry.seq !== i + 1) return fail(`sequence number ${entry.seq}, expected ${i + 1}`);
        if (!key) return fail(`it is keyed, but the audit key file ${keyFile} is missing: restore it from a copy of the repository`);
        if (entry.seq < keyedFrom) return fail(`it is keyed, but the keyed chain starts at seq ${keyedFrom}: lines before it were removed`);
        if (entry.auditKey !== key.id) return fail(`it names audit key ${entry.auditKey}, but the audit key is ${key.id}: it was not written by Lifeline`);
        if (!key.checks(JSON.stringify(body), mac)) return fail('its content does not match its hash (its HMAC under the audit key): the line was edited, or written without the audit key');
        prev = mac!;
      } else {
        const { hash, ...body } = entry;
        if (entry.seq >= keyedFrom) return fail(`it has no MAC, but every line from seq ${keyedFrom} on is keyed: it was edited or rewritten without the audit key`);
        if (entry.prevHash !== prev) return fail(`its prevHash does not match line ${i}: a line before it was removed, inserted or reordered`);
        if (entry.seq !== i + 1) return fail(`sequence number ${entry.seq}, expected ${i + 1}`);
        if (legacyHash(body) !== hash) return fail('its content does not match its hash: the line was edited');
        prev = hash!;
      }
      head = { seq: entry.seq, mac: prev };
    }
    if (key && lines.length < key.keyedFromSeq - 1) {
      return { head, broken: { line: lines.length + 1, reason: `the log ends at seq ${lines.length}, before seq ${key.keyedFromSeq - 1} where its legacy part ended: lines were cut off the end`, missing: { from: lines.length + 1, to: key.keyedFromSeq - 1 } } };
    }
    return { head };
  }
}

/** A record of a head kept outside the file: an offsite anchor, or a head in a workflow's history. */
export interface KnownHead extends AuditHead {
  time: string;
  /** Where it is kept, for messages. */
  from: string;
}

/** The first known head the file contradicts: a line kept with another MAC, or seqs the file no longer has. */
function compareWithHeads(lines: string[], heads: KnownHead[]): ChainCheck['broken'] {
  const sorted = [...heads].sort((a, b) => a.seq - b.seq);
  for (const known of sorted) {
    const line = lines[known.seq - 1];
    if (line === undefined) {
      const newest = sorted.at(-1)!;
      return {
        line: lines.length + 1,
        reason: `seq ${lines.length + 1}–${newest.seq} missing: the log ends at seq ${lines.length}, but ${newest.from} holds the head seq ${newest.seq} (${newest.time}): lines were cut off the end`,
        missing: { from: lines.length + 1, to: newest.seq },
      };
    }
    let mac: string | undefined;
    try {
      mac = chainValue(JSON.parse(line) as AuditEntry);
    } catch {
      mac = undefined;
    }
    if (mac !== known.mac) {
      return {
        line: known.seq,
        reason: `it is not the line ${known.from} holds for seq ${known.seq} (${known.time}; the MACs differ): the log was cut back or rewritten from there`,
      };
    }
  }
  return undefined;
}

/** The installation's audit log: `<BACKUP_DIR>/audit/audit.jsonl`. */
export function auditLogFile(backupDir: string): string {
  return path.join(backupDir, 'audit', 'audit.jsonl');
}

/** The installation's audit log, keyed by its key provider and anchored in every offsite destination. */
export function auditLogOf(config: LifelineConfig): AuditLog {
  const file = auditLogFile(config.backupDir);
  return new AuditLog(file, auditKeySource(auditKeyFile(file), keyringFor(config)), config.destinations.map(destinationStorage));
}
