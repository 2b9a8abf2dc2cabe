import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyKmsError } from '../../src/crypto/keys/kms';
import { classifyS3Error } from '../../src/storage/s3-errors';

const aws = (name: string, status?: number, message = 'server says no') => Object.assign(new Error(message), { name, $metadata: { httpStatusCode: status } });

describe('S3 and KMS failures, classified', () => {
  it('retries what time can fix and names the object', () => {
    for (const err of [aws('SlowDown', 503), aws('InternalError', 500), Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:7070'), { code: 'ECONNREFUSED' })]) {
      const classified = classifyS3Error(err, 'uploading part 3 of', 's3://b/k');
      assert.equal(classified.retryable, true, err.name);
      assert.match(classified.message, /^uploading part 3 of s3:\/\/b\/k failed/);
    }
  });

  it('fails at once on credentials, a missing bucket or an archived object, saying what to check', () => {
    const denied = classifyS3Error(aws('InvalidAccessKeyId', 403), 'reading', 's3://b/k');
    assert.equal(denied.retryable, false);
    assert.match(denied.hint!, /credentials/);
    assert.equal(classifyS3Error(aws('NoSuchBucket', 404), 'reading', 's3://b/k').code, 'StorageMisconfigured');
    assert.match(classifyS3Error(aws('InvalidObjectState', 403), 'reading', 's3://b/k').hint!, /RestoreObject/);
  });

  it('names the KMS key, and retries only throttling and outages', () => {
    const key = 'arn:aws:kms:us-east-1:111122223333:key/abc';
    const cases: Array<[string, string, boolean]> = [
      ['AccessDeniedException', 'KeyAccessDenied', false],
      ['DisabledException', 'KeyDisabled', false],
      ['KMSInvalidStateException', 'KeyDisabled', false],
      ['NotFoundException', 'KeyNotFound', false],
      ['InvalidCiphertextException', 'WrongKey', false],
      ['ThrottlingException', 'KeyServiceUnavailable', true],
    ];
    for (const [name, code, retryable] of cases) {
      const classified = classifyKmsError(aws(name, 400), 'opening the data key of backup x', key);
      assert.equal(classified.code, code, name);
      assert.equal(classified.retryable, retryable, name);
      assert.ok(classified.message.includes(key), `${name} names the key`);
    }
    assert.equal(classifyKmsError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), 'x', key).retryable, true);
  });
});
