/**
 * The one place that takes secrets out of text before it leaves the process (error messages,
 * Temporal failures and results, logs, notices, a check command's output): passwords in URLs,
 * `password=` parameters, and the values of secrets this process knows of.
 *
 * Workflow code imports this (through src/errors.ts), so it uses no Node module; the registry is
 * filled only in the worker and the CLI, where the secrets are.
 */

export const REDACTED = '***';

/** `scheme://user:PASSWORD@` - the password runs to the last `@` of the word (an unencoded `@` stays hidden). */
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s/?#@:"'<>`]*:)[^\s"'<>`]*@/gi;
/** `password=…` in a URL query, a libpq conninfo string or an environment listing (PGPASSWORD=…). */
const PASSWORD_PARAM = /(password\s*=\s*)(?:'[^']*'|[^\s&"'<>`,;]+)/gi;
/**
 * Secrets shorter than this are not searched for as values: a 3-letter one would blank out ordinary
 * words everywhere. A 4- or 5-letter password may cost a message a word; leaking it would cost more.
 */
const MIN_SECRET_LENGTH = 4;

const known = new Set<string>();
let byLength: string[] = [];

/**
 * Remembers a secret value: from now on it is replaced, as written and in its URL-encoded and
 * base64 forms, wherever redact() looks. `forms` adds other spellings (a key's hex and base64).
 */
export function registerSecret(value: string | undefined, ...forms: string[]): void {
  if (!value) return;
  const spellings = [value, encodeURIComponent(value), ...forms];
  if (typeof Buffer !== 'undefined') spellings.push(Buffer.from(value).toString('base64').replace(/=+$/, ''));
  let added = false;
  for (const s of spellings) {
    if (s.length >= MIN_SECRET_LENGTH && !known.has(s)) {
      known.add(s);
      added = true;
    }
  }
  // Longest first, so a secret that contains another is replaced whole.
  if (added) byLength = [...known].sort((a, b) => b.length - a.length);
}

/** Text with every URL password, `password=` value and known secret replaced by ***. */
export function redact(text: string): string {
  let out = text.replace(URL_PASSWORD, (_, head: string) => `${head}${REDACTED}@`).replace(PASSWORD_PARAM, (_, head: string) => `${head}${REDACTED}`);
  for (const secret of byLength) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  return out;
}

/** Every string inside a JSON-like value redacted (error details, check results). */
export function redactDeep<T>(value: T): T {
  if (typeof value === 'string') return redact(value) as T;
  if (Array.isArray(value)) return value.map(redactDeep) as T;
  if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactDeep(v)])) as T;
  }
  return value;
}

/** Redacts an error's message and stack, and its causes', in place (what Temporal serializes). */
export function redactError<E>(err: E): E {
  const seen = new Set<unknown>();
  for (let e = err as unknown; e instanceof Error && !seen.has(e); e = e.cause) {
    seen.add(e);
    e.message = redact(e.message);
    if (e.stack) e.stack = redact(e.stack);
  }
  return err;
}

/** True if a URL carries a password, in its user part or as a `password` parameter. */
export function urlHoldsPassword(url: string): boolean {
  try {
    const u = new URL(url);
    return u.password !== '' || [...u.searchParams.keys()].some((k) => /password/i.test(k));
  } catch {
    return new RegExp(URL_PASSWORD.source, 'i').test(url) || new RegExp(PASSWORD_PARAM.source, 'i').test(url);
  }
}

/**
 * Query parameters of a postgresql:// URL that hold a secret libpq reads only from the connection
 * string (or a service file), such as `sslpassword`. `password` and `passfile` are not among them:
 * they move to PGPASSWORD / PGPASSFILE. Anything else would reach pg_dump's command line, where `ps`
 * shows it, so such a URL is refused.
 */
export function unmovableSecretParams(url: URL): string[] {
  return [...new Set(url.searchParams.keys())].filter((k) => isSecretParam(k) && k !== 'password');
}

/** A URL query parameter whose value is a secret (`password`, `sslpassword`, …; `passfile` only names a file). */
export function isSecretParam(name: string): boolean {
  return /pass|secret/i.test(name) && name !== 'passfile';
}

/** 64 hex digits, or base64 of 32 bytes: what a master key looks like written out. */
export function looksLikeKey(value: string): boolean {
  const v = value.trim();
  if (/^[0-9a-fA-F]{64}$/.test(v)) return true;
  return /^[A-Za-z0-9+/_-]{43}=?$/.test(v);
}
