/** A write's requests as the AWS SDK's commands (write.ts): for a user's own client, or credentials from the SDK's default chain. */
import type { S3ClientLike } from '../shared/options.js';
import { UploadSyncError } from '../shared/errors.js';
import { mapStoreError, statusOf } from './sdk-errors.js';
import type { S3Sdk } from './sdk.js';
import type { WriteCalls } from './write.js';

export function sdkWriteCalls(sdk: S3Sdk, client: S3ClientLike, bucket: string): WriteCalls {
  const send = (command: unknown, signal?: AbortSignal) => client.send(command, { abortSignal: signal });
  return {
    async putObject(key, body, fields, ifNoneMatch, signal) {
      const out = (await send(
        new sdk.PutObjectCommand({
          Bucket: bucket, Key: key, Body: body, ContentLength: body.length, Metadata: fields.metadata, ContentType: fields.contentType,
          ...(ifNoneMatch ? { IfNoneMatch: '*' } : {}),
        }),
        signal,
      )) as { ETag?: string };
      return out.ETag ?? '';
    },
    async createUpload(key, fields, signal) {
      const out = (await send(new sdk.CreateMultipartUploadCommand({ Bucket: bucket, Key: key, Metadata: fields.metadata, ContentType: fields.contentType }), signal)) as { UploadId?: string };
      if (out.UploadId === undefined) throw new UploadSyncError('ERR_STORE', `CreateMultipartUpload of ${key} answered no UploadId`);
      return out.UploadId;
    },
    async uploadPart(key, uploadId, partNumber, body, signal) {
      const out = (await send(new sdk.UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: body.length }), signal)) as { ETag?: string };
      return out.ETag;
    },
    async completeUpload(key, uploadId, parts, ifNoneMatch, signal) {
      await send(
        new sdk.CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts }, ...(ifNoneMatch ? { IfNoneMatch: '*' } : {}) }),
        signal,
      );
    },
    async abortUpload(key, uploadId) {
      await send(new sdk.AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }));
    },
    async etagOf(key, signal) {
      try {
        return ((await send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: key }), signal)) as { ETag?: string }).ETag ?? '';
      } catch (err) {
        if (statusOf(err) === 404) return null;
        throw mapStoreError(err, bucket, key, signal);
      }
    },
    mapError: (err, key, signal) => mapStoreError(err, bucket, key, signal),
  };
}
