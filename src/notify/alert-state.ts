import path from 'node:path';
import { withFileLock } from '../storage/file-lock';
import { readFile, writeFileAtomically } from '../storage/safe-fs';

export interface OpenAlert {
  key: string;
  severity: string;
  title: string;
  openedAt: string;
  lastSeenAt: string;
  /** How many times the condition was seen while open (only the first was sent). */
  seen: number;
}

/**
 * Alerts about lasting conditions, kept in the repository (`alerts/open.json`) so that every
 * worker and every check agrees: one alert when a condition opens, none while it stays open.
 */
export class AlertState {
  readonly file: string;

  constructor(private readonly backupDir: string) {
    this.file = path.join(backupDir, 'alerts', 'open.json');
  }

  private async read(): Promise<Record<string, OpenAlert>> {
    const body = await readFile(this.backupDir, this.file);
    return body ? (JSON.parse(body.toString('utf8')) as Record<string, OpenAlert>) : {};
  }

  private async write(state: Record<string, OpenAlert>): Promise<void> {
    await writeFileAtomically(this.backupDir, this.file, JSON.stringify(state, null, 2) + '\n');
  }

  /** Records the condition; true if it was not open before (the alert should be sent). */
  open(key: string, severity: string, title: string, now = new Date()): Promise<boolean> {
    return withFileLock(this.backupDir, this.file, async () => {
      const state = await this.read();
      const existing = state[key];
      state[key] = existing
        ? { ...existing, lastSeenAt: now.toISOString(), seen: existing.seen + 1 }
        : { key, severity, title, openedAt: now.toISOString(), lastSeenAt: now.toISOString(), seen: 1 };
      await this.write(state);
      return !existing;
    });
  }

  /** Closes the condition; true if it was open (a "resolved" notice is worth sending). */
  clear(key: string): Promise<boolean> {
    return withFileLock(this.backupDir, this.file, async () => {
      const state = await this.read();
      if (!state[key]) return false;
      delete state[key];
      await this.write(state);
      return true;
    });
  }

  async list(): Promise<OpenAlert[]> {
    return Object.values(await this.read()).sort((a, b) => a.openedAt.localeCompare(b.openedAt));
  }
}
