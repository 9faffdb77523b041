/** The AWS SDK's errors, read without its types (the SDK is an optional peer dependency). */
import { UploadSyncError, errorMessage } from '../shared/errors.js';

export interface SdkError {
  name?: string;
  Code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $response?: { headers?: Record<string, string> };
}

export const statusOf = (err: unknown): number | undefined => (err as SdkError | null)?.$metadata?.httpStatusCode;

/** The SDK's errors as `UploadSyncError`s: 412 on a write is `ERR_EXISTS`, an abort `ERR_ABORTED`, the rest `ERR_STORE`. */
export function mapStoreError(err: unknown, bucket: string, key: string | undefined, signal: AbortSignal | undefined): unknown {
  if (err instanceof UploadSyncError) return err;
  if (signal?.aborted === true || (err as SdkError | null)?.name === 'AbortError') {
    return new UploadSyncError('ERR_ABORTED', 'The request to the bucket was aborted', { cause: err });
  }
  const status = statusOf(err);
  const e = err as SdkError;
  if (status === 412 && key !== undefined) return new UploadSyncError('ERR_EXISTS', `The object ${key} already exists`, { cause: err });
  const what = `${e?.Code ?? e?.name ?? 'Error'}${status === undefined ? '' : ` (HTTP ${status})`}`;
  return new UploadSyncError('ERR_STORE', `Bucket ${bucket}${key === undefined ? '' : `, key ${key}`}: ${what}: ${errorMessage(err)}`, { cause: err });
}

/** The HTTP status of an `ERR_STORE`: the SDK's (its error is the `cause`), or lean-http.ts's `status`. */
export function storeStatusOf(err: unknown): number | undefined {
  const e = err as { status?: unknown; cause?: unknown } | null;
  return typeof e?.status === 'number' ? e.status : statusOf(e?.cause);
}
