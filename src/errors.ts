/** Stable error codes. Tests and callers match on these, never on messages. */
export type UploadSyncErrorCode =
  | 'ERR_CONFIG'
  | 'ERR_OUTSIDE'
  | 'ERR_INVALID_PATH'
  | 'ERR_SOURCE_MISSING'
  | 'ERR_DEST_SYMLINK'
  | 'ERR_TYPE_CONFLICT'
  | 'ERR_CHANGED'
  | 'ERR_ABORTED'
  | 'ELOCKED'
  | 'ERR_LOCK_COMPROMISED';

/** Every error this library raises or reports carries a stable `code` and, where one is involved, a `path`. */
export class UploadSyncError extends Error {
  readonly code: UploadSyncErrorCode;
  readonly path: string | undefined;

  constructor(code: UploadSyncErrorCode, message: string, options?: { path?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'UploadSyncError';
    this.code = code;
    this.path = options?.path;
  }
}

/** The `code` of any thrown value: Node's `err.code`, ours, or a fallback. */
export function errorCode(err: unknown, fallback = 'ERR_UNKNOWN'): string {
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'string') return err.code;
  if (err && typeof err === 'object' && 'name' in err && err.name === 'AbortError') return 'ERR_ABORTED';
  return fallback;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
