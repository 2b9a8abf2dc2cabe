import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import type { LifelineConfig } from '../config/config';
import { StallWatch } from '../pipeline/stall';
import type { ResolvedConnection } from '../postgres/connection';
import { backendPid, diagnoseSessions, isLockTimeout, lockTimeoutError } from '../postgres/waits';
import type { DumpHooks, DumpProgress } from './dump';

/** Bytes moved so far over every part of the dump (plain as read, stored as written), and any detail for the heartbeat. */
export type DumpTotals = Omit<DumpProgress, 'phase'>;

/**
 * What keeps a dump honest: heartbeats while bytes move, a `Stalled` failure naming what it waits
 * on once nothing moved for BACKUP_STALL_TIMEOUT, and a lock wait that gives up after
 * BACKUP_LOCK_WAIT_TIMEOUT naming the relation and who holds it.
 */
export class DumpWatch {
  private readonly tag = randomBytes(6).toString('hex');
  /** pg_dump's session name (PGAPPNAME), for finding it on the server. */
  readonly applicationName = `lifeline-pg_dump-${this.tag}`;
  /** The name of this dump's own sessions (snapshot, COPY): what may be cancelled as ours, pid reuse or not. */
  readonly sessionName = `lifeline-dump-${this.tag}`;
  readonly stall: StallWatch;

  constructor(
    private readonly config: LifelineConfig,
    private readonly conn: ResolvedConnection,
    private readonly client: pg.Client,
    hooks: DumpHooks,
    totals: () => DumpTotals,
    /** Sessions of our own besides the snapshot's (the parallel COPY sessions), for naming what a stalled dump waits on. */
    private readonly otherPids: () => number[] = () => [],
  ) {
    this.stall = new StallWatch({
      what: `the dump of ${conn.label}`,
      stallSeconds: config.timeouts.stallSeconds,
      progress: () => {
        const t = totals();
        return t.rawBytes + t.storedBytes;
      },
      onAlive: () => hooks.onProgress?.({ phase: 'dumping', ...totals() }),
      diagnose: () => diagnoseSessions(conn, { pids: this.ownPids(), program: { name: 'pg_dump', applicationName: this.applicationName } }),
      signal: hooks.signal,
      tickMs: hooks.progressIntervalMs,
    });
  }

  get signal(): AbortSignal {
    return this.stall.signal;
  }

  get lockWaitSeconds(): number {
    return this.config.timeouts.lockWaitSeconds;
  }

  /** The snapshot session's reads and locks wait no longer for a lock than pg_dump does. */
  async limitLockWaits(): Promise<void> {
    await this.client.query("SELECT set_config('lock_timeout', $1, true)", [`${this.lockWaitSeconds}s`]);
  }

  /** The error a failed dump reports: the stall that stopped it, a lock wait named in full, or its own. */
  async failure(err: unknown): Promise<unknown> {
    if (this.stall.stalled) return this.stall.stalled;
    if (isLockTimeout(err)) return lockTimeoutError(this.conn, `the dump of ${this.conn.label}`, this.lockWaitSeconds, this.ownPids(), err);
    return err;
  }

  stop(): void {
    this.stall.stop();
  }

  private ownPids(): number[] {
    const pid = backendPid(this.client);
    return [...(pid === undefined ? [] : [pid]), ...this.otherPids()];
  }
}
