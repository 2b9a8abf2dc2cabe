import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import type { NativeConnection } from '@temporalio/worker';
import type { LifelineConfig } from '../config/config';
import { LifelineError } from '../errors';
import { registerSecret } from '../security/redact';

/** What Connection.connect and NativeConnection.connect both take: address, TLS and API key. */
export interface TemporalConnectionOptions {
  address: string;
  /** false: plaintext even with an API key (the SDK would otherwise turn TLS on for one). */
  tls?: { clientCertPair?: { crt: Buffer; key: Buffer }; serverRootCACertificate?: Buffer; serverNameOverride?: string } | false;
  apiKey?: string;
}

/** The connection options of the configured Temporal frontend (TLS files read here, at connect). */
export async function temporalConnectionOptions(config: LifelineConfig): Promise<TemporalConnectionOptions> {
  const { address, tls, apiKey } = config.temporal;
  registerSecret(apiKey);
  const options: TemporalConnectionOptions = { address };
  if (apiKey) options.apiKey = apiKey;
  if (!tls) {
    if (apiKey) options.tls = false;
    return options;
  }
  if (tls.keyFile && !tls.certFile) {
    throw tlsFileError('TEMPORAL_TLS_KEY', tls.keyFile, 'is set without TEMPORAL_TLS_CERT', 'set TEMPORAL_TLS_CERT to the client certificate this key belongs to, or remove TEMPORAL_TLS_KEY');
  }
  if (tls.certFile && !tls.keyFile) {
    throw tlsFileError('TEMPORAL_TLS_CERT', tls.certFile, 'is set without TEMPORAL_TLS_KEY', 'set TEMPORAL_TLS_KEY to the private key of this client certificate, or remove TEMPORAL_TLS_CERT');
  }
  const settings: Exclude<TemporalConnectionOptions['tls'], false | undefined> = {};
  if (tls.caFile) settings.serverRootCACertificate = await readCertificates('TEMPORAL_TLS_CA', tls.caFile);
  if (tls.certFile && tls.keyFile) {
    const crt = await readCertificates('TEMPORAL_TLS_CERT', tls.certFile);
    const key = await readPrivateKey('TEMPORAL_TLS_KEY', tls.keyFile);
    let matches: boolean;
    try {
      matches = new X509Certificate(crt).checkPrivateKey(createPrivateKey(key));
    } catch {
      matches = false;
    }
    if (!matches) {
      throw tlsFileError('TEMPORAL_TLS_KEY', tls.keyFile, `is not the private key of the certificate in ${tls.certFile} (TEMPORAL_TLS_CERT)`, 'point TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY at a certificate and the key it was issued for');
    }
    settings.clientCertPair = { crt, key };
  }
  if (tls.serverName) settings.serverNameOverride = tls.serverName;
  options.tls = settings;
  return options;
}

/** The worker's connection to the configured frontend; a refusal is a typed error that says what to check. */
export async function connectNative(config: LifelineConfig): Promise<NativeConnection> {
  const options = await temporalConnectionOptions(config);
  // Loaded here, not at the top: the CLI's client path must not pay for the worker's native module.
  // require, not import(): run from source through tsx's CommonJS hook, import() would not find './runtime'.
  // The runtime (logging, metrics) is installed before the first native connection, as it must be.
  const { installTemporalRuntime } = require('./runtime') as typeof import('./runtime');
  installTemporalRuntime();
  const { NativeConnection } = require('@temporalio/worker') as typeof import('@temporalio/worker');
  try {
    return await NativeConnection.connect(options);
  } catch (err) {
    throw await temporalConnectFailure(err, config, options);
  }
}

function tlsFileError(variable: string, file: string, problem: string, hint: string, cause?: unknown): LifelineError {
  return new LifelineError('TemporalTlsFile', `${variable}: ${file} ${problem}`, { hint, cause, details: { variable, file } });
}

async function readPemFile(variable: string, file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw tlsFileError(variable, file, 'does not exist', `put the PEM file there, or set ${variable} to where it is`, err);
    if (code === 'EISDIR') throw tlsFileError(variable, file, 'is a directory, not a PEM file', `set ${variable} to the PEM file itself`, err);
    throw tlsFileError(variable, file, `cannot be read (${code ?? (err as Error).message})`, `let the user running Lifeline read it (e.g. chmod 0640 and the worker's group), or set ${variable} to a readable copy`, err);
  }
  return text;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[A-Za-z0-9+/=\r\n]+-----END \1-----/g;

/** One or more PEM certificates (a chain, or several CAs), each one parseable. */
async function readCertificates(variable: string, file: string): Promise<Buffer> {
  const text = await readPemFile(variable, file);
  const blocks = [...text.matchAll(PEM_BLOCK)];
  const certificates = blocks.filter((b) => b[1] === 'CERTIFICATE');
  if (certificates.length === 0) {
    const found = blocks.length ? `holds ${blocks.map((b) => b[1]).join(', ')} but no CERTIFICATE` : 'is not a PEM file (no -----BEGIN CERTIFICATE----- block)';
    throw tlsFileError(variable, file, found, `set ${variable} to a PEM certificate file (convert DER with \`openssl x509 -inform der -in FILE -out FILE.pem\`)`);
  }
  for (const [block] of certificates) {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw tlsFileError(variable, file, `holds a certificate that cannot be parsed (${(err as Error).message})`, `check the file with \`openssl x509 -in ${file} -noout -text\``, err);
    }
  }
  return Buffer.from(text);
}

/** An unencrypted PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC). */
async function readPrivateKey(variable: string, file: string): Promise<Buffer> {
  const text = await readPemFile(variable, file);
  const blocks = [...text.matchAll(PEM_BLOCK)];
  if (blocks.some((b) => b[1] === 'ENCRYPTED PRIVATE KEY') || /Proc-Type: 4,ENCRYPTED/.test(text)) {
    throw tlsFileError(variable, file, 'is an encrypted private key', `decrypt it into a file only the worker can read (\`openssl pkey -in ${file} -out client.key\`, mode 0600)`);
  }
  const keys = blocks.filter((b) => /^(RSA |EC )?PRIVATE KEY$/.test(b[1]!));
  if (keys.length === 0) {
    const found = blocks.length ? `holds ${blocks.map((b) => b[1]).join(', ')} but no PRIVATE KEY` : 'is not a PEM file (no -----BEGIN PRIVATE KEY----- block)';
    throw tlsFileError(variable, file, found, `set ${variable} to the PEM private key of the client certificate`);
  }
  try {
    createPrivateKey(keys[0]![0]);
  } catch (err) {
    throw tlsFileError(variable, file, `holds a private key that cannot be parsed (${(err as Error).message})`, `check the file with \`openssl pkey -in ${file} -noout\``, err);
  }
  return Buffer.from(text);
}

/**
 * A failed connect to the configured frontend, said so an operator knows what to check: with TLS,
 * which CA file, server name and client certificate were used and what a TLS handshake from here
 * says (the SDK's own message can be only "Failed to connect before the deadline"); with an API key,
 * that the key was refused (never the key). Without TLS or a key: TemporalUnavailable as before.
 */
export async function temporalConnectFailure(err: unknown, config: LifelineConfig, options?: TemporalConnectionOptions): Promise<LifelineError> {
  const { address, tls: tlsConfig, apiKey } = config.temporal;
  let reason = errorText(err);
  if (apiKey && /UNAUTHENTICATED|PERMISSION_DENIED|unauthori[sz]ed/i.test(reason)) {
    return new LifelineError('TemporalAuthFailed', `Temporal at ${address} refused the API key (TEMPORAL_API_KEY): ${reason}`, {
      hint: `check that TEMPORAL_API_KEY is a current key with access to namespace "${config.temporal.namespace}" (Temporal Cloud: Settings → API keys), and that TEMPORAL_ADDRESS is that namespace's endpoint`,
      cause: err,
      details: { address },
    });
  }
  if (!tlsConfig || !options?.tls) {
    return new LifelineError('TemporalUnavailable', `cannot reach Temporal at ${address}: ${reason}`, {
      retryable: true,
      hint: 'start it with `npm start` (lifeline up), or set TEMPORAL_ADDRESS to a running server',
      cause: err,
    });
  }
  const handshake = await probeTls(address, options.tls);
  if (handshake === 'unreachable') {
    return new LifelineError('TemporalUnavailable', `cannot reach Temporal at ${address}: ${reason}`, {
      retryable: true,
      hint: 'check TEMPORAL_ADDRESS (host and TLS port) and that the server is running and reachable from here',
      cause: err,
    });
  }
  if (handshake && !reason.includes(handshake)) reason = `${reason} (TLS handshake: ${handshake})`;
  const ca = tlsConfig.caFile ? `the CA in ${tlsConfig.caFile} (TEMPORAL_TLS_CA)` : 'the system CAs (TEMPORAL_TLS_CA unset)';
  const name = tlsConfig.serverName ?? hostOf(address);
  const client = tlsConfig.certFile ? `client certificate ${tlsConfig.certFile} (TEMPORAL_TLS_CERT)` : 'no client certificate (TEMPORAL_TLS_CERT unset)';
  const used = `TLS with ${ca}, server name "${name}"${tlsConfig.serverName ? ' (TEMPORAL_TLS_SERVER_NAME)' : ''}, ${client}`;
  const kind = tlsFailureKind(reason);
  const checks: Record<typeof kind, string> = {
    'unknown-ca': `the server's certificate is not signed by ${ca}: set TEMPORAL_TLS_CA to the CA that issued the server's certificate (\`openssl s_client -connect ${address} -showcerts\` shows the chain)`,
    'name-mismatch': `the server's certificate does not name "${name}": set TEMPORAL_TLS_SERVER_NAME to a name in its subjectAltName, or connect by that name`,
    'client-cert': tlsConfig.certFile
      ? `the server refused client certificate ${tlsConfig.certFile}: set TEMPORAL_TLS_CERT/TEMPORAL_TLS_KEY to a certificate signed by a CA the server trusts for clients (Temporal Cloud: the namespace's CA certificates)`
      : 'the server requires a client certificate (mTLS): set TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY to a certificate and key signed by a CA the server trusts for clients',
    'not-tls': `the server at ${address} does not speak TLS: unset TEMPORAL_TLS_* (or set TEMPORAL_TLS=false), or point TEMPORAL_ADDRESS at its TLS port`,
    other: `check that TEMPORAL_ADDRESS is the TLS endpoint, that ${tlsConfig.caFile ?? 'TEMPORAL_TLS_CA'} is the CA of the server's certificate, that the certificate names "${name}" (else set TEMPORAL_TLS_SERVER_NAME), and that the server accepts the client certificate`,
  };
  return new LifelineError('TemporalTlsFailed', `cannot connect to Temporal at ${address} over TLS (${used}): ${reason}`, {
    hint: checks[kind],
    cause: err,
    details: { address, caFile: tlsConfig.caFile, certFile: tlsConfig.certFile, serverName: name, kind },
  });
}

function hostOf(address: string): string {
  return address.slice(0, address.lastIndexOf(':')).replace(/^\[|\]$/g, '');
}

/**
 * A TLS handshake with the same CA, server name and client certificate the SDK used: its error
 * (OpenSSL's words: "unable to verify the first certificate", "Hostname/IP does not match…",
 * "wrong version number", "alert certificate required"), undefined when it succeeds, 'unreachable'
 * when nothing listens there.
 */
export async function probeTls(address: string, settings: Exclude<TemporalConnectionOptions['tls'], false | undefined>, timeoutMs = 3000): Promise<string | undefined> {
  const host = hostOf(address);
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  const name = settings.serverNameOverride ?? host;
  return new Promise((resolve) => {
    let done = false;
    const finish = (result: string | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    const socket = tls.connect({
      host,
      port,
      ...(net.isIP(name) ? {} : { servername: name }),
      ALPNProtocols: ['h2'],
      ...(settings.serverRootCACertificate && { ca: settings.serverRootCACertificate }),
      ...(settings.clientCertPair && { cert: settings.clientCertPair.crt, key: settings.clientCertPair.key }),
      checkServerIdentity: (_host, cert) => tls.checkServerIdentity(name, cert),
    });
    socket.on('error', (e: NodeJS.ErrnoException) => finish(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN'].includes(e.code ?? '') ? 'unreachable' : openSslReason(e.message)));
    // With TLS 1.3 a server refuses a client certificate (or its absence) after the client's side of the
    // handshake is done: wait a moment for its alert, sending the HTTP/2 preface as the SDK would.
    socket.on('secureConnect', () => {
      socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
      setTimeout(() => finish(undefined), 500);
    });
    socket.on('close', () => finish(done ? undefined : 'the server closed the connection during the TLS handshake'));
  });
}

function tlsFailureKind(reason: string): 'unknown-ca' | 'name-mismatch' | 'client-cert' | 'not-tls' | 'other' {
  // An alert the server sent: it refused our certificate (or its absence), whatever else was said.
  if (/alert (certificate required|bad certificate|unknown ca|certificate unknown|unsupported certificate|access denied)|CertificateRequired/i.test(reason)) return 'client-cert';
  if (/UnknownIssuer|unable to (get|verify)|self[- ]signed|BadSignature|certificate verify failed/i.test(reason)) return 'unknown-ca';
  if (/NotValidForName|does not match certificate's altnames|Hostname\/IP does not match/i.test(reason)) return 'name-mismatch';
  if (/wrong version number|packet length too long|InvalidContentType|record layer failure|http request/i.test(reason)) return 'not-tls';
  return 'other';
}

/** OpenSSL's reason without its codes and source file: "…:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:../deps/…" → "tlsv13 alert certificate required". */
function openSslReason(message: string): string {
  const m = /^[0-9A-F]+:error:[0-9A-F]+:SSL routines:[^:]*:([^:]+):/.exec(message.trim());
  return m ? m[1]!.trim() : message.trim();
}

/** The error's message with the messages of its causes (the SDK wraps the TLS library's reason). */
function errorText(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let i = 0; current && i < 5; i++) {
    const message = current instanceof Error ? current.message : String(current);
    if (message && !parts.some((p) => p.includes(message))) parts.push(message);
    current = (current as { cause?: unknown }).cause;
  }
  return parts.join(': ');
}
