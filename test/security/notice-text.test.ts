/**
 * A restore's requester, reason and names come from a workflow input anyone with access to Temporal
 * can write; in a Slack notice, `<url|text>` would become a link and `<!channel>` a mention.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WebhookNotifier } from '../../src/notify/webhook';
import { webhookReceiver } from '../harness/webhook-receiver';

describe('notice text from workflow inputs', () => {
  it('reaches Slack as text: no link, no mention', async () => {
    const receiver = await webhookReceiver();
    try {
      const reason = 'urgent <https://evil.example/approve|Approve here> <!channel> a&b';
      await new WebhookNotifier(receiver.url).send({
        severity: 'info',
        event: 'restore.waiting',
        database: 'moneyflow',
        title: 'Restore of <@U123> waits for approval',
        text: `mallory asks: restore moneyflow\nReason: ${reason}`,
      });
      const [posted] = receiver.posts;
      assert.ok(posted);
      assert.doesNotMatch(posted.text, /<https:\/\/evil|<!channel>|<@U123>/);
      assert.match(posted.text, /&lt;https:\/\/evil\.example\/approve\|Approve here&gt; &lt;!channel&gt; a&amp;b/);
      // The structured copy keeps the words as they were, for programs that read it.
      assert.match(posted.lifeline.text, /<!channel>/);
    } finally {
      receiver.close();
    }
  });
});
