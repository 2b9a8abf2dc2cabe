import { createHash } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
  type PutObjectCommandInput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { DestinationConfig } from '../config/config';
import { explainTimeouts, requestHandlerOptions } from './network-timeouts';
import { ObjectExistsError } from './local';
import { partRanges, partSizeFor } from './part-size';
import { classifyS3Error, isPreconditionFailed, isS3NotFound } from './s3-errors';
import type { BackupStorage, ByteRange, StorageWriter, StoredObject } from './storage';

export type S3DestinationConfig = Extract<DestinationConfig, { kind: 's3' }>;

/** What a resumable upload needs to carry on after a crash: no secret, small enough for a heartbeat. */
export interface UploadState {
  uploadId: string;
  partBytes: number;
  partsDone: number;
  bytesDone: number;
}

export interface ResumableUploadOptions {
  size: number;
  /** The source's bytes in [start, end); called twice per part (hash, then send). */
  openRange(range: ByteRange): Promise<Readable>;
  resume?: UploadState;
  onState?(state: UploadState): void;
  signal?: AbortSignal;
}

async function sha256Base64(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('base64');
}

/**
 * Node 20 is this project's runtime and the SDK is pinned in the lockfile; the SDK's notice about
 * future releases needing Node 22 would otherwise print in every command's output.
 */
export function quietAwsSdk(): void {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
}

export function s3Client(config: Pick<S3DestinationConfig, 'endpoint' | 'region' | 'forcePathStyle' | 'credentialsEnv' | 'network'>): S3Client {
  const env = config.credentialsEnv;
  quietAwsSdk();
  const client = new S3Client({
    requestHandler: requestHandlerOptions(config.network),
    endpoint: config.endpoint,
    region: config.region,
    forcePathStyle: config.forcePathStyle,
    // Read when the client is made, in the worker: names travel, secrets do not.
    credentials: env ? { accessKeyId: process.env[env.accessKeyId] ?? '', secretAccessKey: process.env[env.secretAccessKey] ?? '' } : undefined,
    // We send SHA-256 checksums ourselves; no streamed CRC trailers (not every S3-compatible server takes them).
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
  });
  explainTimeouts(client, config.endpoint ?? `the S3 endpoint of ${config.region}`, config.network);
  return client;
}

/**
 * A bucket (and prefix) on S3 or an S3-compatible server. Objects become visible only when
 * complete (multipart uploads are invisible until completed) and data objects and manifests are
 * written with `If-None-Match: *`, so nothing replaces a backup.
 */
export class S3Storage implements BackupStorage {
  readonly location: string;
  readonly client: S3Client;

  constructor(
    readonly name: string,
    readonly config: S3DestinationConfig,
    client?: S3Client,
  ) {
    this.location = `s3://${config.bucket}${config.prefix ? `/${config.prefix}` : ''}`;
    this.client = client ?? s3Client(config);
  }

  private objectKey(key: string): string {
    if (key.split('/').some((p) => p === '..' || p === '.')) throw new RangeError(`storage key escapes the prefix: ${key}`);
    return this.config.prefix ? `${this.config.prefix}/${key}` : key;
  }

  private relativeKey(objectKey: string): string {
    return this.config.prefix ? objectKey.slice(this.config.prefix.length + 1) : objectKey;
  }

  describe(key: string): string {
    return `s3://${this.config.bucket}/${this.objectKey(key)}`;
  }

  /** Storage class, server-side encryption and object lock: the settings every backup object gets. */
  private objectSettings(): Partial<PutObjectCommandInput> {
    const c = this.config;
    return {
      ...(c.storageClass && { StorageClass: c.storageClass as PutObjectCommandInput['StorageClass'] }),
      ...(c.serverSideEncryption && { ServerSideEncryption: c.serverSideEncryption }),
      ...(c.sseKmsKeyId && { SSEKMSKeyId: c.sseKmsKeyId }),
      ...(c.objectLock && {
        ObjectLockMode: c.objectLock.mode,
        ObjectLockRetainUntilDate: new Date(Date.now() + c.objectLock.days * 86_400_000),
      }),
    };
  }

  private async send<T>(what: string, key: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw classifyS3Error(err, what, this.describe(key));
    }
  }

  /** A streaming writer (lib-storage) for sources that cannot be re-read; the part size follows `expectedBytes`. */
  async createWriter(key: string, options: { expectedBytes?: number } = {}): Promise<StorageWriter> {
    if (options.expectedBytes === undefined) {
      throw new RangeError(`writing ${this.describe(key)} needs the expected size, to choose a part size within S3's 10,000 parts`);
    }
    const body = new PassThrough();
    const upload = new Upload({
      client: this.client,
      queueSize: 2,
      partSize: partSizeFor(options.expectedBytes),
      params: { Bucket: this.config.bucket, Key: this.objectKey(key), Body: body, IfNoneMatch: '*', ChecksumAlgorithm: 'SHA256', ...this.objectSettings() },
    });
    const done = upload.done();
    done.catch(() => undefined); // observed by publish()
    let settled = false;
    return {
      stream: body,
      publish: async () => {
        try {
          await done;
          settled = true;
        } catch (err) {
          if (isPreconditionFailed(err)) throw new ObjectExistsError(this.describe(key));
          throw classifyS3Error(err, 'upload of', this.describe(key));
        }
      },
      abort: async () => {
        if (settled) return;
        settled = true;
        body.destroy();
        await upload.abort();
        await done.catch(() => undefined);
      },
    };
  }

  /**
   * Uploads a re-readable source (a local backup file) part by part with a SHA-256 checksum on
   * every part, reporting its state after each one; given that state after a crash, it carries on
   * with the parts the server does not have yet. Completes with `If-None-Match: *`.
   */
  async uploadResumable(key: string, options: ResumableUploadOptions): Promise<{ partsReused: number }> {
    const Bucket = this.config.bucket;
    const Key = this.objectKey(key);
    const where = this.describe(key);
    let state = options.resume && (await this.stillOpen(key, options.resume.uploadId)) ? options.resume : undefined;
    if (!state) {
      const created = await this.send('starting the upload of', key, () =>
        this.client.send(new CreateMultipartUploadCommand({ Bucket, Key, ChecksumAlgorithm: 'SHA256', ...this.objectSettings() })),
      );
      state = { uploadId: created.UploadId!, partBytes: partSizeFor(options.size), partsDone: 0, bytesDone: 0 };
      options.onState?.(state);
    }
    const { uploadId, partBytes } = state;
    const ranges = partRanges(options.size, partBytes);
    const uploaded = await this.listParts(key, uploadId);
    const parts: CompletedPart[] = [];
    let bytesDone = 0;
    let partsReused = 0;
    for (const range of ranges) {
      options.signal?.throwIfAborted();
      const checksum = await sha256Base64(await options.openRange(range));
      const have = uploaded.get(range.partNumber);
      // A part the server already holds with the same checksum and size is kept, not resent.
      if (have && have.ChecksumSHA256 === checksum && have.Size === range.end - range.start) {
        partsReused++;
      } else {
        const result = await this.send(`uploading part ${range.partNumber} of`, key, async () =>
          this.client.send(
            new UploadPartCommand({
              Bucket,
              Key,
              UploadId: uploadId,
              PartNumber: range.partNumber,
              Body: await options.openRange(range),
              ContentLength: range.end - range.start,
              ChecksumSHA256: checksum,
            }),
            { abortSignal: options.signal },
          ),
        );
        uploaded.set(range.partNumber, { ETag: result.ETag, ChecksumSHA256: checksum, Size: range.end - range.start });
      }
      parts.push({ PartNumber: range.partNumber, ETag: uploaded.get(range.partNumber)!.ETag, ChecksumSHA256: checksum });
      bytesDone += range.end - range.start;
      options.onState?.({ uploadId, partBytes, partsDone: range.partNumber, bytesDone });
    }
    try {
      await this.client.send(
        new CompleteMultipartUploadCommand({ Bucket, Key, UploadId: uploadId, IfNoneMatch: '*', MultipartUpload: { Parts: parts } }),
      );
      return { partsReused };
    } catch (err) {
      if (isPreconditionFailed(err)) {
        await this.abortUpload(key, uploadId);
        throw new ObjectExistsError(where);
      }
      throw classifyS3Error(err, 'completing the upload of', where);
    }
  }

  private async stillOpen(key: string, uploadId: string): Promise<boolean> {
    try {
      await this.client.send(new ListPartsCommand({ Bucket: this.config.bucket, Key: this.objectKey(key), UploadId: uploadId, MaxParts: 1 }));
      return true;
    } catch (err) {
      if (isS3NotFound(err)) return false;
      throw classifyS3Error(err, 'resuming the upload of', this.describe(key));
    }
  }

  private async listParts(key: string, uploadId: string): Promise<Map<number, { ETag?: string; ChecksumSHA256?: string; Size?: number }>> {
    const parts = new Map<number, { ETag?: string; ChecksumSHA256?: string; Size?: number }>();
    let marker: string | undefined;
    do {
      const page = await this.send('listing the uploaded parts of', key, () =>
        this.client.send(new ListPartsCommand({ Bucket: this.config.bucket, Key: this.objectKey(key), UploadId: uploadId, PartNumberMarker: marker })),
      );
      for (const p of page.Parts ?? []) parts.set(p.PartNumber!, { ETag: p.ETag, ChecksumSHA256: p.ChecksumSHA256, Size: p.Size });
      marker = page.IsTruncated ? page.NextPartNumberMarker : undefined;
    } while (marker);
    return parts;
  }

  private async abortUpload(key: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.config.bucket, Key: this.objectKey(key), UploadId: uploadId }));
    } catch (err) {
      if (!isS3NotFound(err)) throw classifyS3Error(err, 'aborting the upload of', this.describe(key));
    }
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    const result = await this.send('reading', key, () =>
      this.client.send(
        new GetObjectCommand({
          Bucket: this.config.bucket,
          Key: this.objectKey(key),
          ...(range && range.end > range.start && { Range: `bytes=${range.start}-${range.end - 1}` }),
        }),
      ),
    );
    return result.Body as Readable;
  }

  async putIfAbsent(key: string, body: Buffer): Promise<boolean> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.config.bucket,
          Key: this.objectKey(key),
          Body: body,
          IfNoneMatch: '*',
          ChecksumSHA256: createHash('sha256').update(body).digest('base64'),
          ...this.objectSettings(),
        }),
      );
      return true;
    } catch (err) {
      if (isPreconditionFailed(err)) return false;
      throw classifyS3Error(err, 'writing', this.describe(key));
    }
  }

  async replace(key: string, body: Buffer): Promise<void> {
    // No object lock: this object is meant to change (a PUT replaces it atomically).
    await this.send('writing', key, () =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.config.bucket,
          Key: this.objectKey(key),
          Body: body,
          ChecksumSHA256: createHash('sha256').update(body).digest('base64'),
        }),
      ),
    );
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      const result = await this.client.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: this.objectKey(key) }));
      return Buffer.from(await result.Body!.transformToByteArray());
    } catch (err) {
      if (isS3NotFound(err)) return undefined;
      throw classifyS3Error(err, 'reading', this.describe(key));
    }
  }

  async stat(key: string): Promise<StoredObject | undefined> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.config.bucket, Key: this.objectKey(key) }));
      return { key, size: head.ContentLength ?? 0, modified: head.LastModified ?? new Date(0) };
    } catch (err) {
      if (isS3NotFound(err)) return undefined;
      throw classifyS3Error(err, 'checking', this.describe(key));
    }
  }

  async list(prefix: string): Promise<StoredObject[]> {
    const out: StoredObject[] = [];
    let token: string | undefined;
    do {
      const page = await this.send('listing', prefix, () =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.config.bucket, Prefix: this.objectKey(prefix), ContinuationToken: token })),
      );
      for (const o of page.Contents ?? []) out.push({ key: this.relativeKey(o.Key!), size: o.Size ?? 0, modified: o.LastModified ?? new Date(0) });
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out.sort((a, b) => a.key.localeCompare(b.key));
  }

  async delete(key: string): Promise<void> {
    await this.send('deleting', key, () => this.client.send(new DeleteObjectCommand({ Bucket: this.config.bucket, Key: this.objectKey(key) })));
  }

  /** Aborts multipart uploads under `prefix` that were never completed (their parts cost money and are invisible). */
  async removeIncomplete(prefix: string): Promise<string[]> {
    const removed: string[] = [];
    const uploads = await this.send('listing unfinished uploads under', prefix, () =>
      this.client.send(new ListMultipartUploadsCommand({ Bucket: this.config.bucket, Prefix: this.objectKey(prefix) })),
    );
    for (const u of uploads.Uploads ?? []) {
      const key = this.relativeKey(u.Key!);
      await this.abortUpload(key, u.UploadId!);
      removed.push(`${this.describe(key)} (upload ${u.UploadId})`);
    }
    return removed;
  }
}
