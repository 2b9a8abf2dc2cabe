import { createHash } from 'node:crypto';
import path from 'node:path';
import { destinationStorage } from '../backup/repository';
import type { LifelineConfig } from '../config/config';
import { keyringFor } from '../crypto/keys';
import { LifelineError } from '../errors';
import { logger } from '../logger';
import type { BackupStorage } from '../storage/storage';
import { withFileLock } from '../storage/file-lock';
import { appendFile, readFile } from '../storage/safe-fs';
import { auditKeyFile, auditKeySource, auditRepository, type AuditKey, type AuditKeySource } from './audit-key';
import { makeAnchor, readAllAnchors, writeAnchors, type Anchor, type AnchorOutcome, type AuditHead } from './anchors';
import { describeAnchors, refuseOverAnchoredHistory, RESTORE_HINT } from './lost-history';
import { declaredLost, lostChains, makeResetRecord, readResetRecord, writeResetRecord, type LostChain } from './reset';
import { tamperingNotice } from './tampering';
import { deliver } from '../notify';

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

/** Anchor writes refused because the seq is anchored with another MAC: someone rewrote the log. */
export type TamperingReport = (file: string, head: AuditHead, failures: AnchorOutcome['failed']) => Promise<void>;

export class AuditLog {
  /**
   * `keys` is needed to write and to verify (reading entries needs none); anchors go to each of
   * `anchorStores` (the offsite destinations); `onTampering` tells people when an anchor write
   * finds its seq taken by another MAC (the append itself stands).
   */
  constructor(
    readonly file: string,
    private readonly keys?: AuditKeySource,
    private readonly anchorStores: BackupStorage[] = [],
    private readonly onTampering?: TamperingReport,
  ) {}

  private async lines(): Promise<string[]> {
    const body = await readFile(auditRepository(this.file), this.file);
    return body ? body.toString('utf8').split('\n').filter((l) => l !== '') : [];
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
    // A new key over anchors offsite would start a chain that passes for the whole history: refused.
    const key = await keys.forWriting((seen.at(-1)?.seq ?? 0) + 1, seen.some(isKeyed), { check: () => refuseOverAnchoredHistory(this.file, this.anchorStores) });
    const entry = await withFileLock(auditRepository(this.file), this.file, async () => {
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
      // Never through a symlink planted at the name: the line holds strings a requester chose (actor, reason).
      await appendFile(auditRepository(this.file), this.file, JSON.stringify(written) + '\n');
      return written;
    });
    const head = { seq: entry.seq, mac: chainValue(entry) };
    const anchors: AnchorOutcome = isKeyed(entry) ? await writeAnchors(this.anchorStores, makeAnchor(key, head), key.anchorChain) : { written: [], failed: [] };
    for (const f of anchors.failed) logger.warn({ destination: f.destination, seq: head.seq }, `audit anchor for seq ${head.seq} not written to ${f.destination}: ${f.error}`);
    const tampered = anchors.failed.filter((f) => f.tampered);
    if (tampered.length) {
      logger.error({ file: this.file, seq: head.seq }, `audit log tampering: ${tampered.map((f) => f.error).join('; ')}`);
      await this.onTampering?.(this.file, head, tampered).catch((err) => logger.error({ err }, 'audit tampering notice not delivered'));
    }
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

    if (!this.anchorStores.length) {
      result.warnings.push(
        'no offsite destination is configured, so no offsite anchor exists: a cut-off tail, or the log replaced together with its key file, can only be found from the heads in Temporal history (`lifeline audit verify --temporal-days N`)',
      );
    }
    if (!key && lines.length) result.warnings.push(`the log is not keyed yet (no ${keys.file}): it is keyed from its next entry on`);
    // A chain started by `audit reset` reads the record of the history it declared lost.
    const read = (s: BackupStorage) => Promise.all([readAllAnchors(s, key), key?.anchorsApart ? readResetRecord(s, key) : undefined]);
    for (const [found, reset] of await Promise.all(this.anchorStores.map(read))) {
      result.anchors.push({ destination: found.destination, checked: found.anchors.length, newestSeq: found.anchors.at(-1)?.seq, rejected: found.rejected, error: found.error });
      if (found.error) result.warnings.push(`anchors in ${found.destination} could not be read: ${found.error}`);
      if (found.rejected.length) result.warnings.push(`${found.rejected.length} anchor(s) in ${found.destination} are not authentic and were ignored: ${found.rejected.slice(0, 3).join(', ')}`);
      if (!found.error && !found.anchors.length && !found.foreign.length && result.head) result.warnings.push(`${found.destination} holds no anchor of this log yet`);
      const heads = found.anchors.map((a) => ({ ...a, from: `an anchor in ${found.destination}` }));
      const excused = found.foreign.filter((a) => declaredLost(reset, a));
      if (excused.length) result.warnings.push(`${found.destination} holds ${describeAnchors(excused)}: history declared lost by \`lifeline audit reset\` (${reset!.actor}, ${reset!.time})`);
      const unexplained = found.foreign.filter((a) => !declaredLost(reset, a));
      const broken = compareWithHeads(lines, heads) ?? (unexplained.length ? foreignAnchors(found.destination, unexplained, key?.id) : undefined);
      if (broken && (!result.broken || broken.line < result.broken.line)) Object.assign(result, { ok: false, broken });
    }
    if (options.recordedHeads) {
      result.recordedHeads = options.recordedHeads.length;
      const broken = compareWithHeads(lines, options.recordedHeads);
      if (broken && (!result.broken || broken.line < result.broken.line)) Object.assign(result, { ok: false, broken });
    }
    return result;
  }

  /**
   * `lifeline audit reset --confirm-lost-history`: starts a new chain over a lost one (no copy of
   * audit.jsonl and audit-key.json survives). Only with the log empty and every destination read;
   * the loss is recorded offsite (write-once, MACed under the new key) and as the new chain's first
   * line, and the new chain anchors apart from the lost one. Running it again after a failure
   * finishes it.
   */
  async reset(actor: string): Promise<{ entry: AuditEntry; lost: LostChain[] }> {
    const keys = this.requireKeys();
    const refuse = (why: string, hint: string) => new LifelineError('AuditResetRefused', why, { hint });
    if ((await this.lines()).length) throw refuse(`${this.file} is not empty: no history is lost`, 'run `lifeline audit verify`; restore audit-key.json from a copy if only the key file is missing');
    const existing = await keys.open();
    if (existing && !existing.anchorsApart) throw refuse(`${keys.file} exists: its log is missing, not lost with it`, `${RESTORE_HINT}`);
    if (!this.anchorStores.length) throw refuse('no offsite destination is configured: there are no anchors to reset over', 'the next audited action makes a new audit key');
    const found = await Promise.all(this.anchorStores.map((s) => readAllAnchors(s, undefined)));
    const unread = found.find((f) => f.error);
    if (unread) throw new LifelineError('AuditHistoryUnchecked', `the anchors in ${unread.destination} could not be read: ${unread.error}`, { retryable: true, hint: `make ${unread.destination} reachable and run the reset again` });
    const lost = lostChains(found.flatMap((f) => f.anchors).filter((a) => a.auditKey !== existing?.id));
    if (!lost.length && !existing) throw refuse('no offsite destination holds anchors of an earlier chain: nothing to reset', 'the next audited action makes a new audit key');
    const key = existing ?? (await keys.forWriting(1, false, { anchorsApart: true }));
    const previous = existing && (await readResetRecord(this.anchorStores[0]!, key));
    await writeResetRecord(this.anchorStores, previous ?? makeResetRecord(key, lost, actor));
    const entry = await this.append({
      eventId: `audit.reset:${key.id}`,
      actor,
      action: 'audit.reset',
      status: 'history-lost',
      details: { lost: previous?.lost ?? lost, destinations: this.anchorStores.map((s) => s.name) },
    });
    return { entry, lost: previous?.lost ?? lost };
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

/**
 * Anchors under another audit key: the audit key never changes (a master key rotation re-wraps
 * the same key), so the log and its key file were replaced, and the history they anchor is gone.
 */
function foreignAnchors(destination: string, foreign: Anchor[], keyId: string | undefined): ChainCheck['broken'] {
  return {
    line: 1,
    reason: `${destination} holds ${describeAnchors(foreign)}, but this log is keyed with audit key ${keyId}: the log and its audit-key.json were replaced, and the history those anchors name is missing here; ${RESTORE_HINT}`,
  };
}

/** The installation's audit log: `<BACKUP_DIR>/audit/audit.jsonl`. */
export function auditLogFile(backupDir: string): string {
  return path.join(backupDir, 'audit', 'audit.jsonl');
}

/** The installation's audit log, keyed by its key provider and anchored in every offsite destination. */
export function auditLogOf(config: LifelineConfig): AuditLog {
  const file = auditLogFile(config.backupDir);
  const report: TamperingReport = async (f, head, failures) => void (await deliver(config, logger, tamperingNotice(f, head, failures)));
  return new AuditLog(file, auditKeySource(auditKeyFile(file), keyringFor(config)), config.destinations.map(destinationStorage), report);
}
