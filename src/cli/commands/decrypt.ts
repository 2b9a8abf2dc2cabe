import { existsSync, promises as fs, realpathSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { checkWhole, dataKeyFor, openBackup } from '../../backup/read-backup';
import { destinationStorage } from '../../backup/repository';
import { parseManifest, type Manifest } from '../../catalog/manifest';
import { idOfDataKey, MANIFEST_SUFFIX, siblingKey } from '../../catalog/naming';
import type { LifelineConfig } from '../../config/config';
import { loadConfig } from '../../config/load';
import { keyringFor } from '../../crypto/keys';
import { UsageError } from '../../errors';
import { writeArchiveFromParts } from '../../parts/archive-from-parts';
import { GLOBALS_PART } from '../../parts/part-names';
import { isParts } from '../../parts/parts-of';
import { writePartFiles } from '../../parts/part-files';
import { runPipeline } from '../../pipeline/run';
import { LocalStorage, ObjectExistsError } from '../../storage/local';
import { createFile, publishByLink, tempFileFor } from '../../storage/safe-fs';
import { classifyWriteError, type BackupStorage } from '../../storage/storage';
import type { Command } from '../command';

/**
 * A backup named by a path or an s3:// URL, read where it is. For S3 the client settings come
 * from the destination configured for that bucket, else from BACKUP_S3_* and the AWS environment.
 */
function locate(config: LifelineConfig, source: string): { storage: BackupStorage; key: string } {
  const s3 = /^s3:\/\/([^/]+)\/(.+)$/.exec(source);
  if (!s3) {
    // The operator named this file: a symlink to it is followed (the manifest beside the real file is read).
    const file = existsSync(source) ? realpathSync(source) : path.resolve(source);
    return { storage: new LocalStorage('file', path.dirname(file)), key: path.basename(file) };
  }
  const [, bucket, key] = s3 as unknown as [string, string, string];
  const configured = config.destinations.find((d) => d.kind === 's3' && d.bucket === bucket);
  const base = configured?.kind === 's3' ? configured : {
    endpoint: process.env.BACKUP_S3_ENDPOINT,
    region: process.env.BACKUP_S3_REGION ?? process.env.AWS_REGION ?? 'us-east-1',
    forcePathStyle: process.env.BACKUP_S3_ENDPOINT !== undefined,
    credentialsEnv: process.env.BACKUP_S3_ACCESS_KEY_ID ? { accessKeyId: 'BACKUP_S3_ACCESS_KEY_ID', secretAccessKey: 'BACKUP_S3_SECRET_ACCESS_KEY' } : undefined,
  };
  // Keys are taken whole from the URL, so no prefix.
  return { storage: destinationStorage({ ...base, name: 'url', kind: 's3', bucket, prefix: '' }), key };
}

/** Standard output has taken every byte written to it (the process exits right after). */
function stdoutFlushed(): Promise<void> {
  return new Promise((resolve) => process.stdout.write('', () => resolve()));
}

/**
 * A new file written through a hidden 0600 temporary one beside it, which can be patched in place
 * (the archive's TOC gets its data offsets once they are known) and takes the name only when
 * complete: link() never replaces a file.
 */
async function newOutputFile(output: string): Promise<{ stream: Writable; patch(position: number, bytes: Buffer): Promise<void>; publish(): Promise<void>; abort(): Promise<void> }> {
  const root = path.dirname(output);
  const temp = tempFileFor(output);
  const handle = await createFile(root, temp).catch((err) => Promise.reject(classifyWriteError(err, output)));
  const writeAt = async (bytes: Buffer, position: number | null) => {
    for (let at = 0; at < bytes.length; ) at += (await handle.write(bytes, at, bytes.length - at, position === null ? null : position + at)).bytesWritten;
  };
  const stream = new Writable({
    highWaterMark: 1 << 20,
    write: (chunk: Buffer, _enc, done) => void writeAt(chunk, null).then(() => done(), done),
  });
  const ended = () => new Promise<void>((resolve, reject) => (stream.writableFinished ? resolve() : stream.end((err?: Error | null) => (err ? reject(err) : resolve()))));
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await handle.close();
  };
  return {
    stream,
    async patch(position, bytes) {
      await ended();
      await writeAt(bytes, position);
    },
    async publish() {
      await ended();
      await handle.sync();
      await close();
      if (!(await publishByLink(root, temp, output))) throw new ObjectExistsError(output);
    },
    async abort() {
      stream.destroy();
      await close().catch(() => undefined);
      await fs.rm(temp, { force: true });
    },
  };
}

/**
 * A parts-format backup (its manifest must be authentic: the parts' SHA-256s are in it) as one
 * pg_dump custom archive, or with --parts as one plain file per part.
 */
async function decryptParts(storage: BackupStorage, manifest: Manifest, config: LifelineConfig, target: { output?: string; partsDir?: string }): Promise<void> {
  const dataKey = await dataKeyFor(storage, manifest, keyringFor(config));
  try {
    if (target.partsDir) {
      const files = await writePartFiles(storage, manifest, dataKey, target.partsDir);
      process.stderr.write(`${manifest.id}: ${files.length} parts written to ${target.partsDir}, each one's SHA-256 matches the manifest (index.json says what each file is).\n`);
      return;
    }
    const file = target.output ? await newOutputFile(target.output) : undefined;
    let written;
    try {
      written = await writeArchiveFromParts(storage, manifest, dataKey, file?.stream ?? process.stdout);
      if (file) {
        // As pg_dump does when it writes a file: the TOC again, with where each data block is.
        await file.patch(written.located.position, written.located.toc);
        await file.publish();
      } else await stdoutFlushed();
    } catch (err) {
      await file?.abort();
      throw target.output ? classifyWriteError(err, target.output) : err;
    }
    process.stderr.write(
      `${manifest.id}: ${written.bytes} bytes of pg_dump archive${file ? ' (with data offsets: pg_restore -j reads it in parallel)' : ''}: the archive part and ${written.tableParts} part(s) of ${written.tables} table(s), every part's SHA-256 matches the manifest.\n`,
    );
    if (manifest.parts?.some((p) => p.name === GLOBALS_PART)) {
      process.stderr.write(`The roles and tablespaces the database uses are not in a pg_dump archive: \`lifeline decrypt … --parts DIR\` writes them as globals.json.\n`);
    }
  } finally {
    dataKey.fill(0);
  }
}

/**
 * Recovery without Temporal, a database or the catalog: a backup file (local or in S3), its
 * manifest beside it and the key are enough to get the plain pg_dump archive back.
 */
export const decryptCommand: Command = {
  name: 'decrypt',
  summary: 'turn a backup (file or s3:// URL) back into a plain pg_dump archive, with only the backup, its manifest and the key',
  usage: 'lifeline decrypt FILE|s3://BUCKET/KEY [-o OUT | --parts DIR] [--key KEYFILE]',
  details: `  FILE           the .dump.<zst|gz>.enc file; its .manifest.json must be beside it, and for a backup in
                 the parts format its .part.*.enc files too
  s3://…         the same in S3 (endpoint and credentials: the destination configured for the bucket,
                 else BACKUP_S3_ENDPOINT/BACKUP_S3_REGION/BACKUP_S3_ACCESS_KEY_ID/… or the AWS environment)
  -o, --output   a new file to write the archive to (mode 0600); it appears only once the whole backup
                 is decrypted and authenticated, and an existing file is never overwritten
                 A parts-format backup becomes one standard pg_dump custom archive: the archive part with
                 a TABLE DATA entry added for each table stored as parts, its rows decrypted part after
                 part into it (plain pg_restore restores it; pg_dump 14 to 17 archives)
  --parts DIR    parts format only: a new folder (0700) with each part decrypted as its own file:
                 archive.dump (pg_restore reads it: everything but the rows of the tables stored as
                 parts), t<oid>-<n>.copy (COPY text of one table; index.json gives its COPY statement),
                 globals.json (the roles and tablespaces the database uses); it appears only when complete
  --key KEYFILE  the local master key file (default: BACKUP_ENCRYPTION_KEY); KMS-wrapped backups use
                 KMS (BACKUP_KMS_REGION/BACKUP_KMS_ENDPOINT and the AWS credentials)
  Without -o the archive streams to standard output as it is authenticated, chunk by chunk: a damaged
  backup is detected only when its damaged chunk is reached, after the chunks before it went out. So
  pipe it into pg_restore in one transaction that stops at the first error (nothing is kept if the
  stream breaks off), or decrypt to a file first:
    lifeline decrypt moneyflow_backup_20261126_030000.dump.zst.enc | pg_restore --single-transaction --exit-on-error -d postgresql://…/moneyflow
    lifeline decrypt moneyflow_backup_20261126_030000.dump.zst.enc -o moneyflow.dump && pg_restore -d postgresql://…/moneyflow moneyflow.dump`,
  options: { output: { type: 'string', short: 'o' }, parts: { type: 'string' }, key: { type: 'string' } },
  allowPositionals: true,
  async run({ values, positionals }) {
    if (positionals.length !== 1) throw new UsageError('give one backup file or s3:// URL');
    const source = positionals[0]!;
    const config = loadConfig({ requireDatabases: false });
    const { storage, key } = locate(config, source);
    const id = idOfDataKey(key);
    if (!id) throw new UsageError(`${source} is not a backup (<id>.dump.zst.enc or <id>.dump.gz.enc)`);
    const manifestKey = siblingKey(key, MANIFEST_SUFFIX);
    const body = await storage.get(manifestKey);
    if (!body) throw new UsageError(`no manifest beside the backup: ${storage.describe(manifestKey)} (it holds the wrapped key)`);
    const manifest = parseManifest(body.toString('utf8'), storage.describe(manifestKey));
    const partsDir = values.parts === undefined ? undefined : path.resolve(values.parts as string);
    if (partsDir && values.output !== undefined) throw new UsageError('give -o FILE (one archive) or --parts DIR (one file per part), not both');
    if (partsDir && !isParts(manifest)) throw new UsageError(`backup ${manifest.id} is one stream, not made of parts: use -o FILE`);
    if (values.output === undefined && !partsDir && process.stdout.isTTY) throw new UsageError('refusing to write a binary archive to a terminal: use -o FILE or a pipe');
    if (values.key) config.encryption.keyFile = path.resolve(values.key as string);

    const output = values.output === undefined ? undefined : path.resolve(values.output as string);
    // Refused before anything is decrypted; publishing checks again (link() never replaces a file).
    for (const target of [output, partsDir]) {
      if (target && existsSync(target)) throw new UsageError(`${target} already exists; refusing to overwrite it`, `name a new ${target === output ? 'file with -o' : 'folder with --parts'}, or move the existing one away first`);
    }
    if (isParts(manifest)) {
      await decryptParts(storage, { ...manifest, object: { storage: storage.name, key } }, config, { output, partsDir });
      return 0;
    }

    // A manifest from before manifests carried a MAC opens here only, by hand and with a warning: its
    // times and counts are not trusted, though every chunk of the data is still authenticated.
    const { manifestVersion, mac: _mac, ...unsealed } = manifest;
    if (manifestVersion < 2) process.stderr.write(`warning: ${storage.describe(manifestKey)} has no MAC (written before manifests were authenticated): its times and row counts are not trusted\n`);
    const chain = await openBackup(storage, { ...(manifestVersion < 2 ? unsealed : manifest), object: { storage: storage.name, key } }, keyringFor(config));
    // A hidden 0600 temporary file beside the output, published under its name only when complete.
    const writer = output ? await new LocalStorage('output', path.dirname(output)).createWriter(path.basename(output)) : undefined;
    try {
      await runPipeline([...chain.stages, writer?.stream ?? process.stdout]);
      checkWhole(chain, manifest, `backup ${manifest.id}`);
      await writer?.publish();
    } catch (err) {
      await writer?.abort();
      throw err;
    }
    process.stderr.write(`${manifest.id}: ${chain.raw.bytes} bytes of pg_dump archive, SHA-256 matches the manifest.\n`);
    return 0;
  },
};
