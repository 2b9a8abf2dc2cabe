import type { LifelineConfig } from '../config/config';
import type { Logger } from 'pino';
import { LogNotifier } from './log';
import type { Notifier } from './notifier';
import { WebhookNotifier } from './webhook';

export type { Notice, Notifier } from './notifier';

export function notifiersFor(config: LifelineConfig, logger: Logger): Notifier[] {
  const notifiers: Notifier[] = [new LogNotifier(logger)];
  if (config.notifications.webhookUrl) notifiers.push(new WebhookNotifier(config.notifications.webhookUrl));
  return notifiers;
}
