import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { SETTING_VARIABLES } from '../../src/config/load';
import { LifelineError } from '../../src/errors';
import { ensureDockerCompose } from '../../src/infra/tools';
import { SEARCH_ATTRIBUTES } from '../../workflows/definitions';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');
const COMPOSE_FILE = path.join(root, 'docker-compose.temporal.yml');

/**
 * Variables Lifeline reads beyond its settings (SETTING_VARIABLES), each with who reads it. `src` ones
 * are checked below to be read in src/ or bin/, so the list cannot claim what the code does not do.
 */
const EXTRA_VARIABLES: Record<string, 'src' | 'aws-sdk' | 'libpq'> = {
  LIFELINE_CONFIG: 'src',
  LIFELINE_PG_BIN: 'src',
  LOG_LEVEL: 'src',
  TEMPORAL_LOG_LEVEL: 'src',
  TEMPORAL_UI_URL: 'src',
  BACKUP_S3_ACCESS_KEY_ID: 'src',
  BACKUP_S3_SECRET_ACCESS_KEY: 'src',
  BACKUP_SMTP_PASSWORD: 'src',
  MALLOC_ARENA_MAX: 'src',
  AWS_REGION: 'src',
  AWS_DEFAULT_REGION: 'src',
  // The AWS SDK's credential chain (S3 and KMS).
  AWS_ACCESS_KEY_ID: 'aws-sdk',
  AWS_SECRET_ACCESS_KEY: 'aws-sdk',
  AWS_SESSION_TOKEN: 'aws-sdk',
  AWS_PROFILE: 'aws-sdk',
  // pg_dump/pg_restore/psql and node-postgres (the pgpass module).
  PGPASSFILE: 'libpq',
};

const KNOWN = new Set([...SETTING_VARIABLES, ...Object.keys(EXTRA_VARIABLES)]);

/** The variables in `names` that Lifeline's configuration does not know. */
function unknownVariables(names: string[]): string[] {
  return names.filter((n) => !KNOWN.has(n));
}

/** A value that would put a secret into the compose file itself rather than take it from .env or a file. */
function inlineSecrets(env: Record<string, unknown>): string[] {
  return Object.entries(env)
    .filter(([k]) => /PASSWORD|PWD|SECRET|TOKEN|API_KEY|ACCESS_KEY/.test(k))
    .filter(([, v]) => v !== null && !/^\$\{[A-Z0-9_]+(:\?[^}]*)?\}$/.test(String(v)))
    .map(([k]) => k);
}

/** Compose interpolation with the defaults the file gives (`${X:-default}`); an `${X:?…}` reads `env`. */
function interpolate(value: string, env: Record<string, string> = {}): string {
  return value.replace(/\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}/g, (_, name: string, op?: string, arg?: string) => {
    if (env[name]) return env[name]!;
    if (op === '-') return arg ?? '';
    return '';
  });
}

interface Service {
  image?: string;
  build?: { context: string; dockerfile?: string };
  command?: string[];
  environment?: Record<string, string | null>;
  volumes?: string[];
  secrets?: (string | { source: string })[];
  networks?: string[] | Record<string, unknown>;
  ports?: string[];
  profiles?: string[];
  stop_grace_period?: string;
  depends_on?: Record<string, unknown>;
}
interface ComposeFile {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
  secrets?: Record<string, { file: string }>;
  networks?: Record<string, unknown>;
}

const compose = YAML.parse(readFileSync(COMPOSE_FILE, 'utf8'), { merge: true }) as ComposeFile;
const services = compose.services;
/** Lifeline's own services: those built from the repository's Dockerfile. */
const lifelineServices = Object.entries(services).filter(([, s]) => s.build?.context === '.');

/** A published port "127.0.0.1:8888:8888" → { host: 8888, container: 8888 }. */
function published(service: Service): { host: number; container: number }[] {
  return (service.ports ?? []).map((p) => {
    const parts = p.split(':');
    return { host: Number(parts.at(-2)), container: Number(parts.at(-1)) };
  });
}

function seconds(duration: string): number {
  const m = /^(\d+)(s|m)$/.exec(duration);
  assert.ok(m, `duration ${duration}`);
  return Number(m[1]) * (m[2] === 'm' ? 60 : 1);
}

describe('docker-compose.temporal.yml', () => {
  it('has the services of a deployment, Prometheus and the dev server behind profiles', () => {
    for (const name of ['postgresql', 'temporal-admin-tools', 'temporal', 'temporal-create-namespace', 'temporal-ui', 'lifeline-worker', 'lifeline-codec-server']) {
      assert.ok(services[name], name);
      assert.equal(services[name]!.profiles, undefined, `${name} starts with a plain \`up\``);
    }
    assert.deepEqual(services.prometheus?.profiles, ['metrics']);
    assert.deepEqual(services['temporal-dev']?.profiles, ['dev']);
    assert.deepEqual(lifelineServices.map(([n]) => n).sort(), ['lifeline-codec-server', 'lifeline-worker']);
    assert.deepEqual(services['lifeline-worker']!.command, ['worker']);
    assert.deepEqual(services['lifeline-codec-server']!.command, ['codec-server']);
  });

  it("sets no environment variable for Lifeline's services that Lifeline's configuration does not know", () => {
    for (const [name, service] of lifelineServices) {
      const vars = Object.keys(service.environment ?? {});
      assert.ok(vars.length > 0, name);
      assert.deepEqual(unknownVariables(vars), [], `${name} sets variables Lifeline never reads`);
    }
    // The check catches a misspelt one.
    assert.deepEqual(unknownVariables(['BACKUP_S3_SECRET_ACESS_KEY', 'TEMPORAL_ADDRESS']), ['BACKUP_S3_SECRET_ACESS_KEY']);
  });

  it('lists as extra variables only ones the code (or the AWS SDK, or libpq) really reads', () => {
    const sources = ['src', 'bin']
      .flatMap((dir) => listFiles(path.join(root, dir)))
      .filter((f) => /\.(ts|js)$/.test(f))
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n');
    for (const [name, reader] of Object.entries(EXTRA_VARIABLES)) {
      if (reader !== 'src') continue;
      assert.match(sources, new RegExp(`env(\\.${name}\\b|\\[['"]${name}['"]\\])`), `${name} is read nowhere in src/ or bin/`);
    }
  });

  it('puts no secret into the file: each comes from .env, a secret file or the key volume', () => {
    for (const [name, service] of Object.entries(services)) {
      assert.deepEqual(inlineSecrets(service.environment ?? {}), [], name);
    }
    assert.deepEqual(inlineSecrets({ POSTGRES_PASSWORD: 'temporal', SQL_PASSWORD: '${X:-temporal}', A_TOKEN: '${T}', B_SECRET: null }), ['POSTGRES_PASSWORD', 'SQL_PASSWORD']);
    const example = readFileSync(path.join(root, '.env.example'), 'utf8');
    assert.match(example, /^TEMPORAL_DB_PASSWORD=change-me/m, '.env.example holds a placeholder, not a password');
    assert.match(readFileSync(path.join(root, '.gitignore'), 'utf8'), /^\/?\.env$/m, '.env is never committed');
    for (const secret of Object.values(compose.secrets ?? {})) {
      const dir = path.dirname(path.join(root, secret.file));
      assert.match(readFileSync(path.join(dir, '.gitignore'), 'utf8'), /^\*$/m, `${dir} is ignored by git`);
    }
  });

  it('references only the volumes, secrets and networks it defines, and bind-mounts files that exist', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0]!;
        if (source.startsWith('.') || source.startsWith('/')) {
          assert.ok(existsSync(path.join(root, source)), `${name} mounts ${source}, which does not exist`);
        } else {
          assert.ok(compose.volumes && source in compose.volumes, `${name} uses volume ${source}, which is not defined`);
        }
      }
      for (const secret of service.secrets ?? []) {
        const source = typeof secret === 'string' ? secret : secret.source;
        assert.ok(compose.secrets && source in compose.secrets, `${name} uses secret ${source}, which is not defined`);
      }
      const networks = Array.isArray(service.networks) ? service.networks : Object.keys(service.networks ?? {});
      for (const network of networks) assert.ok(compose.networks && network in compose.networks, `${name} uses network ${network}`);
      for (const dependency of Object.keys(service.depends_on ?? {})) assert.ok(services[dependency], `${name} depends on ${dependency}`);
    }
  });

  it("points the Web UI's codec endpoint at the codec server, which allows the UI's origin", () => {
    const ui = services['temporal-ui']!;
    const codec = services['lifeline-codec-server']!;
    const endpoint = new URL(interpolate(ui.environment!.TEMPORAL_CODEC_ENDPOINT!));
    const [host, port] = interpolate(codec.environment!.LIFELINE_CODEC_SERVER_ADDRESS!).split(':');
    assert.equal(host, '0.0.0.0', 'the codec server listens beyond the container');
    // The browser calls the endpoint: the codec server's published port, by a name outside Docker's network.
    assert.ok(!(endpoint.hostname in services), `${endpoint}: a browser cannot resolve the service name ${endpoint.hostname}`);
    assert.ok(published(codec).some((p) => p.container === Number(port) && p.host === Number(endpoint.port)), `${endpoint} reaches no published port of the codec server`);
    const uiOrigin = `http://localhost:${published(ui).find((p) => p.container === 8080)!.host}`;
    assert.deepEqual(interpolate(codec.environment!.LIFELINE_CODEC_CORS_ORIGINS!).split(','), [uiOrigin]);
    assert.equal(interpolate(services['lifeline-worker']!.environment!.TEMPORAL_UI_URL!), uiOrigin);
  });

  it('gives a stopping worker more time than its own shutdown grace, and exposes its metrics to Prometheus', () => {
    const worker = services['lifeline-worker']!;
    assert.ok(seconds(worker.stop_grace_period!) > Number(worker.environment!.LIFELINE_SHUTDOWN_GRACE_SECONDS) + 5);
    const [, metricsPort] = worker.environment!.LIFELINE_METRICS_ADDRESS!.split(':');
    const prometheus = YAML.parse(readFileSync(path.join(root, 'deploy/prometheus/prometheus.yml'), 'utf8')) as {
      rule_files: string[];
      scrape_configs: { dns_sd_configs?: { names: string[]; port: number }[] }[];
    };
    const target = prometheus.scrape_configs.flatMap((c) => c.dns_sd_configs ?? []).find((d) => d.names.includes('lifeline-worker'));
    assert.equal(target?.port, Number(metricsPort));
    const mounted = services.prometheus!.volumes!.map((v) => v.split(':')[1]);
    for (const rules of prometheus.rule_files) assert.ok(mounted.includes(rules), `${rules} is mounted into Prometheus`);
  });

  it('pins every image (no :latest, no untagged image)', () => {
    for (const [name, service] of Object.entries(services)) {
      if (service.build) continue;
      assert.match(service.image ?? '', /^[\w./-]+:(?!latest$)[\w.-]+$/, `${name}: ${service.image}`);
    }
    for (const from of dockerfile().filter((i) => i.op === 'ARG' && /_IMAGE=/.test(i.args))) {
      assert.match(from.args, /=[\w./-]+:(?!latest$)[\w.-]+$/, from.args);
    }
  });

  it("keeps the dev server's search attributes those Lifeline registers", () => {
    const flags = services['temporal-dev']!.command!.filter((a) => a.startsWith('--search-attribute='));
    const want = SEARCH_ATTRIBUTES.map((a) => `--search-attribute=${a.name}=${a.type}`);
    assert.deepEqual(flags.map((f) => f.toLowerCase()).sort(), want.map((f) => f.toLowerCase()).sort());
  });

  it('is valid for docker-compose (config -q), and refuses to start without the Temporal database password', async (t) => {
    let bin: string;
    try {
      bin = await ensureDockerCompose();
    } catch (err) {
      if (err instanceof LifelineError && err.code === 'ToolMissing') return t.skip(`${err.message}; not root, so apt-get cannot install it`);
      throw err;
    }
    // A clean environment: only what .env.example gives, as on a fresh checkout.
    const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' };
    const args = ['--project-directory', root, '-f', COMPOSE_FILE];
    await run(bin, [...args, '--env-file', path.join(root, '.env.example'), '--profile', 'metrics', '--profile', 'dev', 'config', '-q'], { env, cwd: root });
    const empty = path.join(mkdtempSync(path.join(tmpdir(), 'lifeline-compose-')), 'empty.env');
    writeFileSync(empty, '');
    const missing = await run(bin, [...args, '--env-file', empty, 'config', '-q'], { env, cwd: root }).then(
      () => undefined,
      (err: { stderr: string }) => err.stderr,
    );
    rmSync(path.dirname(empty), { recursive: true, force: true });
    assert.match(missing ?? '(it was accepted)', /TEMPORAL_DB_PASSWORD/);
  });
});

/** The Dockerfile's instructions, continuation lines joined, comments dropped. */
function dockerfile(): { op: string; args: string }[] {
  const text = readFileSync(path.join(root, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [op, ...rest] = l.split(/\s+/);
      return { op: op!.toUpperCase(), args: rest.join(' ') };
    });
}

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listFiles(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

/** True if a .dockerignore pattern list keeps `file` (relative) out of the build context. */
function ignored(patterns: string[], file: string): boolean {
  let out = false;
  for (const raw of patterns) {
    const negate = raw.startsWith('!');
    const pattern = negate ? raw.slice(1) : raw;
    const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}(/.*)?$`);
    if (re.test(file)) out = !negate;
  }
  return out;
}

describe('Dockerfile', () => {
  const steps = dockerfile();
  const stages = steps.filter((s) => s.op === 'FROM');
  const last = steps.slice(steps.lastIndexOf(stages.at(-1)!));
  const dockerignore = readFileSync(path.join(root, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));

  it('builds in one stage (npm ci, npm run build) and runs from another', () => {
    assert.ok(stages.length >= 2, 'multi-stage');
    const build = steps.slice(0, steps.indexOf(stages[1]!));
    assert.ok(build.some((s) => s.op === 'RUN' && /\bnpm ci\b/.test(s.args)));
    assert.ok(build.some((s) => s.op === 'RUN' && /\bnpm run build\b/.test(s.args)));
    // The runtime gets the build's output, not the sources (bin/lifeline.js would weigh them for staleness).
    const fromBuild = last.filter((s) => s.op === 'COPY' && /--from=build\b/.test(s.args)).map((s) => s.args.split(/\s+/).at(-2));
    for (const needed of ['/app/package.json', '/app/node_modules', '/app/bin', '/app/dist']) assert.ok(fromBuild.includes(needed), needed);
    assert.ok(!fromBuild.some((f) => f === '/app' || f === '/app/src'), 'no sources in the runtime image');
    assert.ok(build.some((s) => s.op === 'RUN' && s.args.includes('test -f dist/workflow-bundle.js')), 'the workflows are bundled ahead');
  });

  it('copies only sources that exist and that .dockerignore lets through, everything the build reads among them', () => {
    for (const copy of steps.filter((s) => s.op === 'COPY' && !s.args.includes('--from='))) {
      const sources = copy.args.split(/\s+/).filter((a) => !a.startsWith('--')).slice(0, -1);
      for (const source of sources) {
        assert.ok(existsSync(path.join(root, source)), `COPY ${source}: not in the repository`);
        if (source !== '.') assert.equal(ignored(dockerignore, source), false, `COPY ${source}: excluded by .dockerignore`);
      }
    }
    const tsconfig = JSON.parse(readFileSync(path.join(root, 'tsconfig.build.json'), 'utf8')) as { include: string[] };
    const needed = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'bin/lifeline.js', 'scripts/bundle-workflows.ts', ...tsconfig.include];
    for (const file of needed) assert.equal(ignored(dockerignore, file), false, `${file} is needed by the build but excluded`);
    for (const local of ['.env', 'node_modules', '.lifeline/keys/master.key', 'deploy/secrets/pgpass', 'lifeline.config.yaml']) {
      assert.equal(ignored(dockerignore, local), true, `${local} would be sent to the build`);
    }
    assert.equal(ignored(['*.env', '!.env.example'], '.env.example'), false);
  });

  it('runs bin/lifeline.js as an unprivileged user under an init, worker by default', () => {
    const user = last.filter((s) => s.op === 'USER').at(-1)?.args;
    assert.ok(user && !/^(root|0)(:|$)/.test(user), `USER ${user}`);
    const entrypoint = JSON.parse(last.find((s) => s.op === 'ENTRYPOINT')!.args) as string[];
    assert.deepEqual(entrypoint.slice(0, 2), ['/usr/bin/tini', '--']);
    assert.equal(entrypoint[2], '/app/bin/lifeline.js');
    assert.ok(statSync(path.join(root, 'bin/lifeline.js')).mode & 0o111, 'bin/lifeline.js is executable');
    assert.deepEqual(JSON.parse(last.find((s) => s.op === 'CMD')!.args), ['worker']);
    // The build checks for the compiled entry bin/lifeline.js runs.
    const compiled = /path\.join\(root, ((?:'[^']+', )*'[^']+')\)/.exec(readFileSync(path.join(root, 'bin/lifeline.js'), 'utf8'))![1]!.replace(/'/g, '').split(', ').join('/');
    assert.ok(steps.some((s) => s.op === 'RUN' && s.args.includes(`test -f ${compiled}`)), compiled);
  });

  it('installs the PostgreSQL client tools (PGDG, 17 by default: they serve servers 13-17), zstd and tini', () => {
    const runtime = last.filter((s) => s.op === 'RUN' || s.op === 'ARG').map((s) => s.args).join('\n');
    assert.match(runtime, /apt\.postgresql\.org/);
    assert.match(runtime, /PG_CLIENT_MAJORS="[^"]*\b17\b[^"]*"/);
    assert.match(runtime, /postgresql-client-\$v/);
    assert.match(runtime, /\bzstd\b/);
    assert.match(runtime, /\btini\b/);
  });
});
