import { randomBytes } from 'node:crypto';
import type { LifelineConfig } from '../../config/config';
import { HOST_PORT } from '../../config/schema';
import { LifelineError, UsageError, errorMessage } from '../../errors';
import { isListening } from '../../infra/net';
import { ENCRYPTED_ENCODING } from '../../temporal/codec';
import { chainCodecs, payloadsFromJSON, payloadsToJSON, startCodecServer, type RunningCodecServer } from '../../temporal/codec-server';
import { dataConverterFor } from '../../temporal/data-converter';
import type { Command } from '../command';
import { config } from '../common';

/** The configured codec server (LIFELINE_CODEC_*) around the installation's payload codec. */
export function startConfiguredCodecServer(cfg: LifelineConfig, address = cfg.codecServer.address, moreOrigins: string[] = []): Promise<RunningCodecServer> {
  return startCodecServer({
    address,
    codec: chainCodecs(dataConverterFor(cfg).payloadCodecs ?? []),
    namespace: cfg.temporal.namespace,
    corsOrigins: [...new Set([...cfg.codecServer.corsOrigins, ...moreOrigins])],
    token: cfg.codecServer.token,
  });
}

/**
 * Why the server at `url` is not this installation's codec server, or undefined when it is: a random value
 * it encodes must come back encrypted and decrypt here, which only a holder of this installation's codec
 * key can make happen (an echo, another program or another installation's codec server cannot).
 */
export async function notOurCodecServer(cfg: LifelineConfig, url: string): Promise<string | undefined> {
  const probe = randomBytes(16).toString('hex');
  const codec = chainCodecs(dataConverterFor(cfg).payloadCodecs ?? []);
  try {
    const response = await fetch(`${url}/encode`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(cfg.codecServer.token && { authorization: `Bearer ${cfg.codecServer.token}` }) },
      body: JSON.stringify(payloadsToJSON([{ metadata: { encoding: new TextEncoder().encode('json/plain') }, data: new TextEncoder().encode(JSON.stringify(probe)) }])),
      signal: AbortSignal.timeout(5000),
    });
    if (response.status !== 200) return `it answered POST /encode with ${response.status}`;
    const [sealed, ...more] = payloadsFromJSON(await response.json());
    if (!sealed || more.length > 0) return 'it did not answer one payload for one';
    if (new TextDecoder().decode(sealed.metadata?.encoding ?? new Uint8Array()) !== ENCRYPTED_ENCODING) return 'it did not encrypt the payload it was given';
    const [opened] = await codec.decode([sealed]);
    if (new TextDecoder().decode(opened?.data ?? new Uint8Array()) !== JSON.stringify(probe)) return 'what it encrypted does not decrypt to what it was given';
    return undefined;
  } catch (err) {
    return `its answer to POST /encode is not one of this installation's codec (${errorMessage(err)})`;
  }
}

/**
 * For `lifeline up`: the codec server's URL, started in this process unless one already listens on the
 * configured address (a `lifeline codec-server` in another terminal, a previous `up`); `stop` is absent then.
 * Besides the configured origins it lets in the Web UI `up` itself starts, under both of its names.
 */
export async function codecServerForUp(cfg: LifelineConfig, uiOrigins = ['http://localhost:8233', 'http://127.0.0.1:8233']): Promise<{ url: string; stop?: () => Promise<void>; started: boolean }> {
  const { address } = cfg.codecServer;
  const at = address.lastIndexOf(':');
  if (await isListening(address.slice(0, at), Number(address.slice(at + 1)))) {
    const url = `http://${address}`;
    // The Web UI would show what that server returns as the decoded payloads, and send it what is typed into
    // the UI to encode: only this installation's own codec server (another `lifeline codec-server`) is used.
    const why = await notOurCodecServer(cfg, url);
    if (why) {
      throw new LifelineError('CodecServerForeign', `something other than this installation's codec server listens on ${address} (LIFELINE_CODEC_SERVER_ADDRESS): ${why}`, {
        hint: 'stop what listens there (`ss -ltnp` names it), or set LIFELINE_CODEC_SERVER_ADDRESS to a free host:port; a running `lifeline codec-server` of this installation (same BACKUP_DIR and master key) is used as it is',
        details: { address },
      });
    }
    return { url, started: false };
  }
  const server = await startConfiguredCodecServer(cfg, address, uiOrigins);
  return { url: server.url, stop: server.close, started: true };
}

export const codecServerCommand: Command = {
  name: 'codec-server',
  summary: 'serve the payload codec over HTTP, so the Web UI and `temporal --codec-endpoint` show decoded payloads',
  usage: 'lifeline codec-server [--address HOST:PORT]',
  details: `  POST /encode, /decode, /<namespace>/encode and /<namespace>/decode (Temporal's remote codec protocol),
  for the namespace TEMPORAL_NAMESPACE only. Listens on LIFELINE_CODEC_SERVER_ADDRESS (default
  127.0.0.1:8888); --address overrides it. Browsers may call it only from LIFELINE_CODEC_CORS_ORIGINS;
  with LIFELINE_CODEC_TOKEN set, every request needs "Authorization: Bearer <token>".
  Web UI:      temporal server start-dev --ui-codec-endpoint http://127.0.0.1:8888  (or TEMPORAL_CODEC_ENDPOINT)
  CLI:         temporal workflow show -w <id> --codec-endpoint http://127.0.0.1:8888 [--codec-auth "Bearer <token>"]
  Runs until SIGINT/SIGTERM.`,
  options: { address: { type: 'string' } },
  async run({ values }) {
    const cfg = config();
    const address = (values.address as string | undefined) ?? cfg.codecServer.address;
    if (!HOST_PORT.test(address)) throw new UsageError(`--address ${address}: must be host:port, like 127.0.0.1:8888`);
    const server = await startConfiguredCodecServer(cfg, address);
    process.stdout.write(
      `Codec server on ${server.url} for namespace "${cfg.temporal.namespace}"` +
        `; browsers allowed from ${cfg.codecServer.corsOrigins.join(', ') || 'nowhere'}` +
        `; bearer token ${cfg.codecServer.token ? 'required' : 'not required (LIFELINE_CODEC_TOKEN unset)'}.\n` +
        `  Web UI: --ui-codec-endpoint ${server.url}   CLI: temporal workflow show -w <id> --codec-endpoint ${server.url}\n`,
    );
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await server.close();
    return 0;
  },
};
