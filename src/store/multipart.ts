/**
 * A multipart upload written as the bytes arrive (CreateMultipartUpload, UploadPart,
 * CompleteMultipartUpload, AbortMultipartUpload: the SDK's commands or lean signed requests, see
 * write.ts).
 *
 * Why not `@aws-sdk/lib-storage`: its `Upload` buffers more than it sends (measured on a 1 GiB
 * stream: 167 MB peak RSS with its defaults, 116–128 MB with one part in flight), and the goal of
 * issue 12 is 100 MB. Here memory is `partSize × (queueSize + 1)` reused buffers (one filling while
 * `queueSize` are sent), allocated once per upload; nothing else holds the bytes.
 *
 * On any error, an abort of the signal, `maxBytes` passed or the object found to exist
 * (`ifNoneMatch`): the parts in flight are cancelled and waited for, then the upload is aborted, so
 * no pending multipart upload (and none of its parts' storage) is left behind.
 */
import { UploadSyncError } from '../shared/errors.js';
import { aborted, PartSource } from './source.js';
import type { CompletedPart, ObjectFields, PartTuning, WriteCalls } from './write.js';

export interface MultipartTarget extends PartTuning {
  readonly calls: WriteCalls;
  readonly key: string;
  readonly fields: ObjectFields;
  /** Fail with `ERR_EXISTS` rather than overwrite (see PutOptions.ifNoneMatch for what this guarantees). */
  readonly ifNoneMatch: boolean;
}

/** S3's ceiling on the number of parts of one upload. */
export const MAX_PARTS = 10_000;

/**
 * Uploads `first` (already read, full) and the rest of `source` as parts.
 * @returns the number of parts.
 */
export async function uploadMultipart(t: MultipartTarget, source: PartSource, first: Buffer, signal: AbortSignal | undefined): Promise<number> {
  const inner = new AbortController();
  const sendSignal = signal === undefined ? inner.signal : AbortSignal.any([signal, inner.signal]);
  const { calls, key } = t;
  let uploadId: string;
  try {
    // Not under the signal: a request cut after the server made the upload would leave it pending,
    // its UploadId unknown here. The signal is looked at once the answer is in (below).
    uploadId = await calls.createUpload(key, t.fields, undefined);
  } catch (err) {
    source.close();
    throw calls.mapError(err, key, undefined);
  }

  const parts: CompletedPart[] = [];
  const free: Buffer[] = [];
  const inFlight = new Set<Promise<void>>();
  let failure: unknown = null;
  let partNumber = 0;

  const send = (buf: Buffer, length: number): void => {
    const number = ++partNumber;
    if (number > MAX_PARTS) throw new UploadSyncError('ERR_TOO_LARGE', `More than ${MAX_PARTS} parts of ${t.partSize} bytes: the object is too large for this part size`);
    const p: Promise<void> = calls
      .uploadPart(key, uploadId, number, buf.subarray(0, length), sendSignal)
      .then(
        (etag) => {
          parts.push({ PartNumber: number, ETag: etag });
          free.push(buf); // the request is over: the buffer can take the next part
        },
        (err: unknown) => {
          failure ??= err;
        },
      )
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  };

  try {
    signal?.throwIfAborted();
    send(first, first.length);
    while (!source.done) {
      while (inFlight.size >= t.queueSize && failure === null) await Promise.race(inFlight);
      if (failure !== null) throw failure;
      const buf = free.pop() ?? Buffer.allocUnsafeSlow(t.partSize);
      const n = await source.fill(buf);
      if (n === 0) break; // the body ended exactly at a part's end
      send(buf, n);
    }
    await Promise.all(inFlight);
    if (failure !== null) throw failure;
    if (signal?.aborted === true) throw aborted(signal);
    // Ceph RGW (16) ignores If-None-Match on CompleteMultipartUpload: look first. Racy (another
    // writer may complete between this HEAD and ours), which AWS S3 closes by honouring the header.
    if (t.ifNoneMatch && (await calls.etagOf(key, signal)) !== null) throw new UploadSyncError('ERR_EXISTS', `The object ${key} already exists`);
    parts.sort((a, b) => a.PartNumber - b.PartNumber);
    await calls.completeUpload(key, uploadId, parts, t.ifNoneMatch, signal);
    return partNumber;
  } catch (err) {
    inner.abort();
    source.close();
    await Promise.allSettled([...inFlight]);
    // Not under the signal: the abort must reach the server even when the caller gave up.
    await calls.abortUpload(key, uploadId).catch(() => undefined);
    if (signal?.aborted === true && !(err instanceof UploadSyncError)) throw aborted(signal);
    throw calls.mapError(err, key, signal);
  }
}
