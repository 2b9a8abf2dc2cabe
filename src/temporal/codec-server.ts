/**
 * The codec server: POST /encode and /decode (also /<namespace>/encode|decode) in the JSON form of
 * Temporal's Payloads protobuf, so the Web UI (`--ui-codec-endpoint`, TEMPORAL_CODEC_ENDPOINT) and
 * `temporal … --codec-endpoint` show Lifeline's encrypted payloads decoded. node:http, no framework.
 *
 * Guards, in order, on every request: the browser Origin (CORS: only the configured origins; a POST
 * from any other origin is refused, so a web page elsewhere cannot use an operator's local codec
 * server), the bearer token when one is configured (every POST; an OPTIONS preflight carries none),
 * the route and the namespace (path segment or X-Namespace header: the configured one only), the body
 * size, then the JSON. Payload contents never reach a log or an error message.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { LifelineError, errorMessage } from '../errors';
import { logger } from '../logger';

export const CODEC_MAX_BODY_BYTES = 4 * 1024 * 1024;

export interface CodecServerOptions {
  codec: PayloadCodec;
  /** The one namespace this server decodes for (TEMPORAL_NAMESPACE). */
  namespace: string;
  /** Browser origins allowed to call it (LIFELINE_CODEC_CORS_ORIGINS), e.g. http://localhost:8233. */
  corsOrigins: string[];
  /** Bearer token every POST must carry (LIFELINE_CODEC_TOKEN); absent: none asked. */
  token?: string;
  maxBodyBytes?: number;
  /**
   * Bytes of request bodies held at once, all requests together (default 64 MiB): a request whose next
   * chunk would go over is answered 503. Counted as received, so connections that stall after a few bytes
   * hold almost nothing and block no one; this bounds the memory anyone who can reach the port can make
   * the process hold.
   */
  maxBufferedBytes?: number;
}

export const CODEC_MAX_BUFFERED_BYTES = 64 * 1024 * 1024;

export interface RunningCodecServer {
  /** http://host:port, what the Web UI and the CLI are given. */
  url: string;
  server: http.Server;
  close(): Promise<void>;
}

/** The HTTP headers a preflight may ask for: the UI sends X-Namespace, and Authorization (+ -Extras) when it passes its access token. */
const ALLOWED_HEADERS = 'content-type, x-namespace, authorization, authorization-extras';

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** Compares in constant time (of the digests: the token's length is not revealed either). */
function tokenMatches(header: string | undefined, digest: Buffer | undefined): boolean {
  if (!digest) return true;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return timingSafeEqual(sha256(m?.[1] ?? ''), digest) && m !== null;
}

const BASE64 = /^(?:[A-Za-z0-9+/]*={0,2}|[A-Za-z0-9_-]*={0,2})$/;

function bytesFrom(value: unknown, where: string): Uint8Array {
  if (typeof value !== 'string' || !BASE64.test(value) || value.length % 4 === 1) {
    throw new HttpError(400, 'BadPayload', `${where} must be a base64 string`);
  }
  return new Uint8Array(Buffer.from(value, 'base64'));
}

/** `{payloads: [{metadata: {k: base64}, data: base64}]}` (protobuf JSON) → Payloads. */
export function payloadsFromJSON(body: unknown): Payload[] {
  const shape = 'the body must be a JSON object {"payloads": [{"metadata": {…}, "data": "<base64>"}, …]}';
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'BadPayload', shape);
  const unknown = Object.keys(body).filter((k) => k !== 'payloads');
  if (unknown.length > 0) throw new HttpError(400, 'BadPayload', `${shape}; unknown field ${JSON.stringify(unknown[0])}`);
  // Protobuf JSON leaves an empty list out: the Go SDK (the temporal CLI) sends {} for no payloads.
  const list = (body as { payloads?: unknown }).payloads ?? [];
  if (!Array.isArray(list)) throw new HttpError(400, 'BadPayload', shape);
  return list.map((item: unknown, i) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new HttpError(400, 'BadPayload', `payloads[${i}] must be an object`);
    const { metadata = {}, data } = item as { metadata?: unknown; data?: unknown };
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
      throw new HttpError(400, 'BadPayload', `payloads[${i}].metadata must be an object of base64 strings`);
    }
    return {
      metadata: Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, bytesFrom(v, `payloads[${i}].metadata.${k}`)])),
      data: data === undefined || data === null ? new Uint8Array() : bytesFrom(data, `payloads[${i}].data`),
    };
  });
}

const b64 = (bytes: Uint8Array | null | undefined) => (bytes ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') : '');

export function payloadsToJSON(payloads: Payload[]): { payloads: Array<{ metadata: Record<string, string>; data: string }> } {
  return {
    payloads: payloads.map((p) => ({
      metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, b64(v)])),
      data: b64(p.data),
    })),
  };
}

/** What all requests' bodies hold at once, against the server's budget. */
interface BodyBudget {
  used: number;
  max: number;
}

const busy = (max: number) =>
  new HttpError(503, 'Busy', `the codec server holds ${max} bytes of request bodies already; retry in a moment`, { 'Retry-After': '1' });

/** The body, counted against `budget` as it arrives; the caller gives back `held()` bytes when done with it. */
function readBody(req: http.IncomingMessage, limit: number, budget: BodyBudget, held: { bytes: number }): Promise<Buffer> {
  const tooLarge = () => new HttpError(413, 'PayloadTooLarge', `the body is larger than ${limit} bytes (the codec server's limit)`);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      const over = size > limit ? tooLarge() : budget.used + chunk.length > budget.max ? busy(budget.max) : undefined;
      if (over) {
        req.removeAllListeners('data');
        req.resume();
        reject(over);
      } else {
        chunks.push(chunk);
        budget.used += chunk.length;
        held.bytes += chunk.length;
      }
    });
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
    // Gone before its body ended (the client closed, or requestTimeout cut it): free the slot either way.
    req.once('close', () => {
      if (!req.complete) reject(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
    });
  });
}

/** The request handler; exported for servers that mount it themselves. */
export function codecRequestHandler(options: CodecServerOptions): http.RequestListener {
  const allowed = new Set(options.corsOrigins);
  const tokenDigest = options.token ? sha256(options.token) : undefined;
  const limit = options.maxBodyBytes ?? CODEC_MAX_BODY_BYTES;
  const budget: BodyBudget = { used: 0, max: options.maxBufferedBytes ?? CODEC_MAX_BUFFERED_BYTES };

  const cors = (origin: string | undefined): Record<string, string> =>
    origin && allowed.has(origin) ? { 'Access-Control-Allow-Origin': origin, 'Access-Control-Allow-Credentials': 'true', Vary: 'Origin' } : { Vary: 'Origin' };

  async function handle(req: http.IncomingMessage): Promise<{ status: number; body?: unknown; headers?: Record<string, string> }> {
    const origin = req.headers.origin;
    if (origin !== undefined && !allowed.has(origin)) {
      throw new HttpError(403, 'OriginNotAllowed', `origin ${JSON.stringify(origin)} is not allowed (allowed: ${[...allowed].join(', ') || 'none'}); set LIFELINE_CODEC_CORS_ORIGINS to the Web UI's origin`);
    }
    if (req.method === 'OPTIONS') {
      return {
        status: 204,
        headers: {
          'Access-Control-Allow-Methods': 'POST, OPTIONS',
          'Access-Control-Allow-Headers': ALLOWED_HEADERS,
          'Access-Control-Max-Age': '600',
          // Chromium asks before a page on a public address calls a private or loopback one (a UI served
          // from https://temporal.example.com and a codec server on 127.0.0.1): an allowed origin may.
          ...(req.headers['access-control-request-private-network'] === 'true' && origin ? { 'Access-Control-Allow-Private-Network': 'true' } : {}),
        },
      };
    }
    if (!tokenMatches(req.headers.authorization, tokenDigest)) {
      throw new HttpError(401, 'Unauthorized', 'a valid "Authorization: Bearer <LIFELINE_CODEC_TOKEN>" header is required', {
        'WWW-Authenticate': 'Bearer realm="lifeline-codec"',
      });
    }
    const url = new URL(req.url ?? '/', 'http://codec');
    const m = /^(?:\/([^/]+))?\/(encode|decode)\/?$/.exec(url.pathname);
    if (!m) throw new HttpError(404, 'NotFound', 'no such path: POST /encode, /decode, /<namespace>/encode or /<namespace>/decode');
    if (req.method !== 'POST') throw new HttpError(405, 'MethodNotAllowed', `${req.method} is not allowed: POST only`, { Allow: 'POST, OPTIONS' });
    const fromPath = m[1] === undefined ? undefined : decodeSegment(m[1]);
    if (fromPath !== undefined && fromPath !== options.namespace) {
      throw new HttpError(404, 'UnknownNamespace', `namespace ${JSON.stringify(fromPath)} is not served here (this codec server decodes for "${options.namespace}")`);
    }
    // The Go SDK (the temporal CLI) sends an empty X-Namespace when it was given no --namespace.
    const fromHeader = req.headers['x-namespace'] || undefined;
    if (fromHeader !== undefined && fromHeader !== options.namespace) {
      throw new HttpError(403, 'WrongNamespace', `X-Namespace ${JSON.stringify(fromHeader)} is not served here (this codec server decodes for "${options.namespace}")`);
    }
    // Bodies are buffered (up to `limit` each): without a budget, unfinished uploads on many connections
    // (no token is asked by default, and the Web UI cannot send one) made the process hold GiBs.
    const held = { bytes: 0 };
    try {
      return await decodeOrEncode(req, m[2] as 'encode' | 'decode', held);
    } finally {
      budget.used -= held.bytes;
    }
  }

  async function decodeOrEncode(req: http.IncomingMessage, op: 'encode' | 'decode', held: { bytes: number }): Promise<{ status: number; body?: unknown }> {
    const raw = await readBody(req, limit, budget, held);
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      throw new HttpError(400, 'MalformedJson', `the body is not JSON (${(err as Error).message}); expected {"payloads": [{"metadata": {…}, "data": "<base64>"}, …]}`);
    }
    const payloads = payloadsFromJSON(parsed);
    let result: Payload[];
    try {
      result = op === 'encode' ? await options.codec.encode(payloads) : await options.codec.decode(payloads);
    } catch (err) {
      // A codec's own error (an unknown key id, a failed tag) names keys, never payload contents.
      throw new HttpError(422, err instanceof LifelineError ? err.code : 'CodecFailed', `${op} failed: ${errorMessage(err)}`);
    }
    return { status: 200, body: payloadsToJSON(result) };
  }

  return (req, res) => {
    const started = Date.now();
    const base = cors(req.headers.origin);
    handle(req).then(
      ({ status, body, headers }) => send(res, status, body, { ...base, ...headers }),
      (err: unknown) => {
        // A client that went away mid-body is not the server's failure (and logging each at error lets anyone flood the log).
        const aborted = !(err instanceof HttpError) && (req.destroyed || (err as NodeJS.ErrnoException).code === 'ECONNRESET');
        if (aborted) {
          logger.debug({ path: req.url }, 'codec server: the client closed the connection before sending its body');
          return;
        }
        const e = err instanceof HttpError ? err : new HttpError(500, 'Internal', errorMessage(err));
        if (e.status === 500) logger.error({ err }, 'codec server: request failed');
        // A refused request's unread body is read and dropped (bounded by requestTimeout), then the connection closes.
        send(res, e.status, { error: e.message, code: e.code }, { ...base, ...e.headers, ...(req.complete ? {} : { Connection: 'close' }) });
        if (!req.complete) req.resume();
      },
    ).finally(() => logger.debug({ method: req.method, path: req.url, status: res.statusCode, ms: Date.now() - started }, 'codec server request'));
  };
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, 'BadPath', 'the namespace in the path is not valid percent-encoding');
  }
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string>): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    ...(body === undefined ? {} : { 'Content-Type': 'application/json; charset=utf-8' }),
    'Content-Length': String(Buffer.byteLength(text)),
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(text);
}

export function createCodecServer(options: CodecServerOptions): http.Server {
  // A request (headers and body) gets 30 s, checked every 5 s: a stalled upload gives its bytes back within 35 s.
  const server = http.createServer({ connectionsCheckingInterval: 5_000 }, codecRequestHandler(options));
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  return server;
}

/** Starts a codec server on `address` (host:port; port 0 picks one) and resolves when it listens. */
export async function startCodecServer(options: CodecServerOptions & { address: string }): Promise<RunningCodecServer> {
  const at = options.address.lastIndexOf(':');
  const host = options.address.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  const port = Number(options.address.slice(at + 1));
  const server = createCodecServer(options);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE' || err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL'
          ? new LifelineError('CodecServerAddress', `the codec server cannot listen on ${options.address} (${err.code})`, {
              hint: 'choose another host:port with LIFELINE_CODEC_SERVER_ADDRESS (or --address), or stop what listens there',
            })
          : err,
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  const shown = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return {
    url: `http://${shown}:${bound.port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Several codecs as one: encode in order, decode in reverse (what the SDK does with `payloadCodecs`). */
export function chainCodecs(codecs: PayloadCodec[]): PayloadCodec {
  return {
    async encode(payloads) {
      for (const codec of codecs) payloads = await codec.encode(payloads);
      return payloads;
    },
    async decode(payloads) {
      for (const codec of [...codecs].reverse()) payloads = await codec.decode(payloads);
      return payloads;
    },
  };
}
