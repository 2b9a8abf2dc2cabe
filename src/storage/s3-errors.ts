import { LifelineError } from '../errors';

const NOT_FOUND = new Set(['NoSuchKey', 'NotFound', 'NoSuchUpload']);
const RETRYABLE = new Set(['SlowDown', 'RequestTimeout', 'InternalError', 'ServiceUnavailable', 'RequestTimeTooSkewed', 'TimeoutError', 'ThrottlingException']);
const NETWORK = /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN|socket hang up|timed? ?out/i;

interface AwsError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

export function s3ErrorName(err: unknown): string {
  const e = err as AwsError;
  return e?.name ?? e?.code ?? 'Error';
}

export function isS3NotFound(err: unknown): boolean {
  const e = err as AwsError;
  return NOT_FOUND.has(s3ErrorName(err)) || e?.$metadata?.httpStatusCode === 404;
}

export function isPreconditionFailed(err: unknown): boolean {
  const e = err as AwsError;
  return s3ErrorName(err) === 'PreconditionFailed' || e?.$metadata?.httpStatusCode === 412;
}

/**
 * An S3 failure as a LifelineError: network trouble, throttling and 5xx retry; credentials,
 * permissions, a missing bucket and archived objects fail at once with what to check.
 */
export function classifyS3Error(err: unknown, what: string, where: string): LifelineError {
  if (err instanceof LifelineError) return err;
  const e = err as AwsError;
  const name = s3ErrorName(err);
  const status = e?.$metadata?.httpStatusCode;
  const message = `${what} ${where} failed: ${name}${e?.message && e.message !== name ? ` (${e.message})` : ''}`;
  if (RETRYABLE.has(name) || (status !== undefined && status >= 500) || NETWORK.test(`${e?.code ?? ''} ${e?.message ?? ''}`)) {
    return new LifelineError('StorageUnavailable', message, { retryable: true, cause: err, hint: 'the S3 endpoint is unreachable or busy; Lifeline retries' });
  }
  if (name === 'NoSuchBucket') {
    return new LifelineError('StorageMisconfigured', message, { cause: err, hint: 'create the bucket or fix the destination bucket name' });
  }
  if (name === 'InvalidObjectState') {
    return new LifelineError('ObjectArchived', message, {
      cause: err,
      hint: 'the object is in an archive storage class: request a restore of it in S3 (RestoreObject) and retry when it is available',
    });
  }
  if (name === 'InvalidAccessKeyId' || name === 'SignatureDoesNotMatch' || name === 'AccessDenied' || status === 403) {
    return new LifelineError('StorageAccessDenied', message, {
      cause: err,
      hint: 'check the destination credentials (accessKeyIdEnv/secretAccessKeyEnv or the AWS credential chain) and the bucket policy',
    });
  }
  if (isS3NotFound(err)) return new LifelineError('ObjectMissing', message, { cause: err });
  return new LifelineError('StorageError', message, { cause: err, retryable: status === undefined });
}
