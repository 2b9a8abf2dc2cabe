import { promises as fs } from 'node:fs';
import path from 'node:path';
import { withFileLock } from '../storage/file-lock';

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

  constructor(backupDir: string) {
    this.file = path.join(backupDir, 'alerts', 'open.json');
  }

  private async read(): Promise<Record<string, OpenAlert>> {
    try {
      return JSON.parse(await fs.readFile(this.file, 'utf8')) as Record<string, OpenAlert>;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw err;
    }
  }

  private async write(state: Record<string, OpenAlert>): Promise<void> {
    const temp = `${this.file}.${process.pid}.tmp`;
    await fs.writeFile(temp, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
    await fs.rename(temp, this.file);
  }

  /** Records the condition; true if it was not open before (the alert should be sent). */
  open(key: string, severity: string, title: string, now = new Date()): Promise<boolean> {
    return withFileLock(this.file, async () => {
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
    return withFileLock(this.file, async () => {
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
