/**
 * TLS in front of the Temporal dev server, for the tests of TEMPORAL_TLS_*: certificates made by
 * `openssl` (a CA, server certificates, a client certificate, and an unrelated second CA), a proxy on
 * loopback that terminates TLS (ALPN h2, optionally requiring a client certificate signed by the test CA)
 * and pipes the bytes to the dev server's plain port, and a TLS gRPC endpoint that records the request
 * headers it is sent (the API key travels as `authorization: Bearer …`) and answers Unauthenticated.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';

export interface Pem {
  cert: string;
  key: string;
}

export interface TestPki {
  dir: string;
  /** The CA that signed every certificate below but `other`. */
  ca: Pem;
  /** Server certificate for 127.0.0.1 and localhost. */
  server: Pem;
  /** Server certificate whose only name is DNS:temporal.test (TEMPORAL_TLS_SERVER_NAME). */
  named: Pem;
  /** Client certificate (mTLS), CN lifeline-worker. */
  client: Pem;
  /** A second, unrelated CA: a server it trusts is not this server. */
  other: Pem;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** An EC P-256 key and certificate signed by `ca` (self-signed without one), with the given extensions. */
function issue(dir: string, name: string, subject: string, extensions: string[], ca?: Pem): Pem {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.pem`);
  openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
  const ext = path.join(dir, `${name}.ext`);
  writeFileSync(ext, `[v3]\n${extensions.join('\n')}\n`);
  if (!ca) {
    openssl(dir, ['req', '-x509', '-new', '-key', key, '-out', cert, '-days', '2', '-subj', subject, '-config', ext, '-extensions', 'v3', '-sha256']);
  } else {
    const csr = path.join(dir, `${name}.csr`);
    openssl(dir, ['req', '-new', '-key', key, '-out', csr, '-subj', subject, '-config', '/dev/null']);
    openssl(dir, ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', cert, '-days', '2', '-sha256', '-extfile', ext, '-extensions', 'v3']);
  }
  return { cert, key };
}

/** Makes the test certificates under `dir` with the openssl command line. */
export function makeTestPki(dir: string): TestPki {
  mkdirSync(dir, { recursive: true });
  const caExt = ['basicConstraints = critical, CA:TRUE', 'keyUsage = critical, keyCertSign, cRLSign', 'subjectKeyIdentifier = hash'];
  const leaf = (usage: string, san?: string) => [
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature',
    `extendedKeyUsage = ${usage}`,
    ...(san ? [`subjectAltName = ${san}`] : []),
    'authorityKeyIdentifier = keyid',
  ];
  const ca = issue(dir, 'ca', '/CN=Lifeline Test CA', caExt);
  const other = issue(dir, 'other-ca', '/CN=Some Other CA', caExt);
  return {
    dir,
    ca,
    other,
    server: issue(dir, 'server', '/CN=localhost', leaf('serverAuth', 'IP:127.0.0.1, DNS:localhost'), ca),
    named: issue(dir, 'named', '/CN=temporal.test', leaf('serverAuth', 'DNS:temporal.test'), ca),
    client: issue(dir, 'client', '/CN=lifeline-worker', leaf('clientAuth', 'DNS:lifeline-worker'), ca),
  };
}

export interface TlsProxyOptions {
  /** host:port of the plain server behind the proxy. */
  target: string;
  /** The proxy's own certificate. */
  server: Pem;
  /** When set, a client must present a certificate signed by this CA (mTLS). */
  clientCa?: string;
}

export interface TlsProxy {
  /** 127.0.0.1:port */
  address: string;
  /** Subjects (CN) of the client certificates of connections the proxy accepted. */
  clientSubjects: Array<string | undefined>;
  /** Handshakes the proxy refused, with why. */
  refused: string[];
  stop(): Promise<void>;
}

/** A TLS-terminating TCP proxy on 127.0.0.1 in front of `target`. */
export async function startTlsProxy(options: TlsProxyOptions): Promise<TlsProxy> {
  const [host, port] = splitAddress(options.target);
  const sockets = new Set<net.Socket>();
  const clientSubjects: Array<string | undefined> = [];
  const refused: string[] = [];
  const server = tls.createServer(
    {
      cert: readFileSync(options.server.cert),
      key: readFileSync(options.server.key),
      ALPNProtocols: ['h2'],
      ...(options.clientCa && { ca: readFileSync(options.clientCa), requestCert: true, rejectUnauthorized: true }),
    },
    (socket) => {
      const peer = socket.getPeerCertificate();
      clientSubjects.push(peer && 'subject' in peer ? (peer.subject?.CN as string | undefined) : undefined);
      const upstream = net.connect(port, host);
      for (const s of [socket, upstream]) {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => {
          socket.destroy();
          upstream.destroy();
        });
      }
      socket.pipe(upstream).pipe(socket);
    },
  );
  server.on('tlsClientError', (err) => refused.push(err.message));
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    address,
    clientSubjects,
    refused,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface AuthRecorder {
  address: string;
  /** The headers of every gRPC request received. */
  requests: http2.IncomingHttpHeaders[];
  stop(): Promise<void>;
}

/**
 * A TLS HTTP/2 endpoint that records each request's headers and answers every gRPC call with
 * UNAUTHENTICATED, as Temporal Cloud does for a key it does not accept.
 */
export async function startAuthRecorder(server: Pem): Promise<AuthRecorder> {
  const requests: http2.IncomingHttpHeaders[] = [];
  const sessions = new Set<http2.ServerHttp2Session>();
  const h2 = http2.createSecureServer({ cert: readFileSync(server.cert), key: readFileSync(server.key), ALPNProtocols: ['h2'] });
  h2.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  h2.on('stream', (stream, headers) => {
    requests.push(headers);
    stream.on('error', () => undefined);
    stream.resume();
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '16', 'grpc-message': 'Request unauthorized.' }, { endStream: true });
  });
  await new Promise<void>((resolve, reject) => h2.once('error', reject).listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(h2.address() as net.AddressInfo).port}`,
    requests,
    async stop() {
      for (const s of sessions) s.destroy();
      await new Promise<void>((resolve) => h2.close(() => resolve()));
    },
  };
}

function splitAddress(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i), Number(address.slice(i + 1))];
}
