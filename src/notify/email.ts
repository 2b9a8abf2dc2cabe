import nodemailer, { type Transporter } from 'nodemailer';
import type { LifelineConfig } from '../config/config';
import { LifelineError } from '../errors';
import type { Notice, Notifier } from './notifier';
import { deliverWithRetries } from './retry';

const SUBJECT_TAG: Record<Notice['severity'], string> = { info: '[Lifeline]', warning: '[Lifeline WARNING]', critical: '[Lifeline CRITICAL]' };

/** Sends notices by SMTP to BACKUP_EMAIL_NOTIFICATIONS; the password comes from BACKUP_SMTP_PASSWORD in the worker. */
export class EmailNotifier implements Notifier {
  readonly name = 'email';
  private readonly transport: Transporter;

  constructor(
    private readonly smtp: LifelineConfig['notifications']['smtp'],
    private readonly to: string[],
    private readonly attempts = 3,
  ) {
    this.transport = nodemailer.createTransport({
      host: smtp.host,
      port: smtp.port,
      secure: smtp.secure,
      auth: smtp.user ? { user: smtp.user, pass: process.env.BACKUP_SMTP_PASSWORD ?? '' } : undefined,
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 20_000,
    });
  }

  send(notice: Notice): Promise<void> {
    return deliverWithRetries(this.attempts, () => this.post(notice));
  }

  private async post(notice: Notice): Promise<void> {
    try {
      await this.transport.sendMail({
        from: this.smtp.from,
        to: this.to,
        subject: `${SUBJECT_TAG[notice.severity]} ${notice.title}`,
        text: `${notice.text}\n\nSeverity: ${notice.severity}\nEvent: ${notice.event}${notice.database ? `\nDatabase: ${notice.database}` : ''}${notice.backupId ? `\nBackup: ${notice.backupId}` : ''}${notice.link ? `\n${notice.link}` : ''}\n`,
        headers: { 'X-Lifeline-Event': notice.event, 'X-Lifeline-Severity': notice.severity },
      });
    } catch (err) {
      const e = err as Error & { responseCode?: number };
      // 5xx answers (bad recipient, refused auth) do not get better by retrying.
      const permanent = e.responseCode !== undefined && e.responseCode >= 500;
      throw new LifelineError('NotifyFailed', `e-mail via ${this.smtp.host}:${this.smtp.port} failed: ${e.message}`, {
        retryable: !permanent,
        hint: 'check BACKUP_SMTP_HOST/PORT/USER (and BACKUP_SMTP_PASSWORD) and BACKUP_EMAIL_NOTIFICATIONS',
      });
    }
  }
}
