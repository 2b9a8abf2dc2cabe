import type { LifelineConfig } from '../config/config';
import type { Logger } from 'pino';
import { AlertState } from './alert-state';
import { EmailNotifier } from './email';
import { LogNotifier } from './log';
import type { Notice, Notifier } from './notifier';
import { WebhookNotifier } from './webhook';
import { redact, redactDeep } from '../security/redact';

export type { Notice, Notifier } from './notifier';

export function notifiersFor(config: LifelineConfig, logger: Logger): Notifier[] {
  const notifiers: Notifier[] = [new LogNotifier(logger)];
  if (config.notifications.webhookUrl) notifiers.push(new WebhookNotifier(config.notifications.webhookUrl));
  if (config.notifications.email.length) notifiers.push(new EmailNotifier(config.notifications.smtp, config.notifications.email));
  return notifiers;
}

/**
 * Sends a notice to every configured channel (each retries its own delivery). One failing channel
 * does not stop the others and is reported, not retried here (which would repeat the rest).
 * Lasting conditions are deduplicated through the repository's alert state; completion notices
 * are logged only when BACKUP_NOTIFY_SUCCESS is false.
 */
export async function deliver(config: LifelineConfig, logger: Logger, raw: Notice): Promise<{ delivered: string[]; failed: string[]; suppressed?: string }> {
  // Notices quote failures and check output: nothing leaves with a password or a known secret.
  const notice = redactDeep(raw);
  const state = new AlertState(config.backupDir);
  if (notice.dedupKey && !(await state.open(notice.dedupKey, notice.severity, notice.title))) {
    logger.info({ notice: notice.dedupKey }, 'alert already open: not sent again');
    return { delivered: [], failed: [], suppressed: 'already open' };
  }
  if (notice.clears && !(await state.clear(notice.clears))) return { delivered: [], failed: [], suppressed: 'nothing open to clear' };
  const quiet = notice.event === 'backup.succeeded' && !config.notifications.onSuccess;
  const delivered: string[] = [];
  const failed: string[] = [];
  for (const notifier of notifiersFor(config, logger)) {
    if (quiet && notifier.name !== 'log') continue;
    try {
      await notifier.send(notice);
      delivered.push(notifier.name);
    } catch (err) {
      logger.warn({ err, notifier: notifier.name }, 'notification not delivered');
      failed.push(redact(`${notifier.name}: ${(err as Error).message}`));
    }
  }
  // Reached nobody but the log: keep the condition closed, so the next check tries to tell someone again.
  if (notice.dedupKey && failed.length && delivered.every((d) => d === 'log')) await state.clear(notice.dedupKey);
  return { delivered, failed };
}
