/** What Lifeline tells people about. No secrets: database names, ids, sizes and messages only. */
export interface Notice {
  severity: 'info' | 'warning' | 'critical';
  /** Short machine-readable kind, e.g. backup.succeeded, backup.failed. */
  event: string;
  /** Absent for installation-wide events (key rotation). */
  database?: string;
  title: string;
  text: string;
  backupId?: string;
  /** Link to the workflow in the Temporal Web UI, when known. */
  link?: string;
  /**
   * An alert about a condition that lasts (RPO breached, low space): sent when it opens, not again
   * while it stays open. A notice with `clears` closes it (and is sent only if it was open).
   */
  dedupKey?: string;
  clears?: string;
}

export interface Notifier {
  readonly name: string;
  send(notice: Notice): Promise<void>;
}
