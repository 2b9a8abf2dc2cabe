import type { Logger } from 'pino';
import type { Notice, Notifier } from './notifier';

/** Always on: every notice lands in the worker's log, whatever else is configured. */
export class LogNotifier implements Notifier {
  readonly name = 'log';
  constructor(private readonly logger: Logger) {}

  async send(notice: Notice): Promise<void> {
    const level = notice.severity === 'critical' ? 'error' : notice.severity === 'warning' ? 'warn' : 'info';
    this.logger[level]({ notice }, notice.title);
  }
}
