import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { LifelineConfig } from '../config/config';
import { LifelineError } from '../errors';
import { withFileLock } from '../storage/file-lock';

/**
 * The audit trail: one JSON line per operation, each carrying the SHA-256 of the line before it
 * (a hash chain), so that an edited, removed or reordered line is detected by `verify()`.
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
  prevHash: string;
  hash: string;
}

export const GENESIS_HASH = '0'.repeat(64);

function entryHash(entry: Omit<AuditEntry, 'hash'>): string {
  return createHash('sha256').update(JSON.stringify(entry)).digest('hex');
}

export interface ChainCheck {
  ok: boolean;
  entries: number;
  /** The first line that breaks the chain (1-based) and why. */
  broken?: { line: number; reason: string };
  lastHash: string;
}

export class AuditLog {
  constructor(readonly file: string) {}

  /** Every entry, in order. Lines that are not JSON are returned as undefined (verify() reports them). */
  private async lines(): Promise<string[]> {
    try {
      return (await fs.readFile(this.file, 'utf8')).split('\n').filter((l) => l !== '');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  async entries(): Promise<AuditEntry[]> {
    return (await this.lines()).map((l, i) => {
      try {
        return JSON.parse(l) as AuditEntry;
      } catch {
        throw new LifelineError('AuditCorrupt', `audit log ${this.file} line ${i + 1} is not JSON`, { hint: 'run `lifeline audit verify`' });
      }
    });
  }

  append(event: AuditEvent): Promise<AuditEntry> {
    return withFileLock(this.file, async () => {
      const lines = await this.lines();
      const last = lines.length ? (JSON.parse(lines.at(-1)!) as AuditEntry) : undefined;
      // Idempotence: look back over the recent entries only.
      for (const line of lines.slice(-200)) {
        const entry = JSON.parse(line) as AuditEntry;
        if (entry.eventId === event.eventId) return entry;
      }
      const { time, ...rest } = event;
      const body: Omit<AuditEntry, 'hash'> = {
        seq: (last?.seq ?? 0) + 1,
        time: time ?? new Date().toISOString(),
        ...rest,
        prevHash: last?.hash ?? GENESIS_HASH,
      };
      const entry: AuditEntry = { ...body, hash: entryHash(body) };
      const handle = await fs.open(this.file, 'a', 0o600);
      try {
        await handle.write(JSON.stringify(entry) + '\n');
        await handle.sync();
      } finally {
        await handle.close();
      }
      return entry;
    });
  }

  /** Recomputes the chain; names the first line that was edited, removed, inserted or reordered. */
  async verify(): Promise<ChainCheck> {
    const lines = await this.lines();
    let prevHash = GENESIS_HASH;
    for (const [i, line] of lines.entries()) {
      const fail = (reason: string): ChainCheck => ({ ok: false, entries: lines.length, broken: { line: i + 1, reason }, lastHash: prevHash });
      let entry: AuditEntry;
      try {
        entry = JSON.parse(line) as AuditEntry;
      } catch {
        return fail('not valid JSON');
      }
      const { hash, ...body } = entry;
      if (entry.prevHash !== prevHash) return fail(`its prevHash does not match line ${i}: a line before it was removed, inserted or reordered`);
      if (entry.seq !== i + 1) return fail(`sequence number ${entry.seq}, expected ${i + 1}`);
      if (entryHash(body) !== hash) return fail('its content does not match its hash: the line was edited');
      prevHash = hash;
    }
    return { ok: true, entries: lines.length, lastHash: prevHash };
  }
}

/** The installation's audit log: `<BACKUP_DIR>/audit/audit.jsonl`. */
export function auditLogFile(backupDir: string): string {
  return path.join(backupDir, 'audit', 'audit.jsonl');
}

export function auditLogOf(config: Pick<LifelineConfig, 'backupDir'>): AuditLog {
  return new AuditLog(auditLogFile(config.backupDir));
}
