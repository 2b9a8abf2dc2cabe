import { LifelineError } from '../errors';
import type { Notice, Notifier } from './notifier';
import { deliverWithRetries } from './retry';

const EMOJI: Record<Notice['severity'], string> = { info: ':white_check_mark:', warning: ':warning:', critical: ':rotating_light:' };

/**
 * Slack's escaping for message text: a name or reason from a workflow input (`<https://evil|Approve>`,
 * `<!channel>`) stays text instead of becoming a link or a mention.
 */
export function slackText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Posts Slack-compatible JSON (`text` plus the structured notice) to BACKUP_WEBHOOK_URL. */
export class WebhookNotifier implements Notifier {
  readonly name = 'webhook';

  constructor(
    private readonly url: string,
    private readonly attempts = 3,
    private readonly timeoutMs = 10_000,
  ) {}

  send(notice: Notice): Promise<void> {
    return deliverWithRetries(this.attempts, () => this.post(notice));
  }

  private async post(notice: Notice): Promise<void> {
    const text = `${EMOJI[notice.severity]} *${slackText(notice.title)}*\n${slackText(notice.text)}${notice.link ? `\n<${notice.link}|Open in Temporal>` : ''}`;
    let response: Response;
    try {
      response = await fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text, lifeline: notice }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new LifelineError('NotifyFailed', `webhook ${new URL(this.url).host} unreachable: ${(err as Error).message}`, { retryable: true });
    }
    if (!response.ok) {
      throw new LifelineError('NotifyFailed', `webhook ${new URL(this.url).host} answered ${response.status}`, {
        retryable: response.status >= 500 || response.status === 429,
        hint: 'check BACKUP_WEBHOOK_URL',
      });
    }
  }
}
