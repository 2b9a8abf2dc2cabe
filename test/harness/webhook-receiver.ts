import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** What Lifeline's webhook notifier posts: Slack's `text` and the structured notice. */
export interface Posted {
  text: string;
  lifeline: { severity: string; event: string; database?: string; backupId?: string; title: string; text: string };
}

/** A real HTTP server on loopback that records every JSON body posted to it. */
export async function webhookReceiver(): Promise<{ url: string; posts: Posted[]; close(): void }> {
  const posts: Posted[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      posts.push(JSON.parse(body) as Posted);
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, posts, close: () => server.close() };
}
