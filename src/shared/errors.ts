/**
 * Stable error codes. Tests and callers match on these, never on messages. Each is documented in
 * the README ("Error codes"); a test checks the two lists match. A lock taken over mid-run (its
 * holder stalled past the stale time) is a warning in the log, not an error: the run finishes
 * safely without it (targeted runs never take it; deletions are re-checked at the moment they happen).
 */
export type UploadSyncErrorCode =
  | 'ERR_CONFIG'
  | 'ERR_OUTSIDE'
  | 'ERR_INVALID_PATH'
  | 'ERR_SOURCE_MISSING'
  | 'ERR_SOURCE_EMPTY'
  | 'ERR_MAX_DELETE'
  | 'ERR_DEST_SYMLINK'
  | 'ERR_TYPE_CONFLICT'
  | 'ERR_CHANGED'
  | 'ERR_TOO_LARGE'
  | 'ERR_TYPE'
  | 'ERR_INVALID_NAME'
  | 'ERR_EXISTS'
  | 'ERR_ABORTED'
  | 'ERR_NOT_MULTIPART'
  | 'ERR_MALFORMED'
  | 'ERR_NO_FILE'
  | 'ERR_LIMIT'
  | 'ERR_STORE'
  | 'ELOCKED';

/** Marks our errors across bundles: `upload-sync` and `upload-sync/next` (ESM and CJS) each carry a copy of the class. */
const BRAND = Symbol.for('upload-sync.UploadSyncError');

/** Every error this library raises or reports carries a stable `code` and, where one is involved, a `path`. */
export class UploadSyncError extends Error {
  readonly code: UploadSyncErrorCode;
  readonly path: string | undefined;

  constructor(code: UploadSyncErrorCode, message: string, options?: { path?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'UploadSyncError';
    this.code = code;
    this.path = options?.path;
    Object.defineProperty(this, BRAND, { value: true });
  }

  /** `instanceof` holds for an error made by any copy of the class (an app may import both entries). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (this !== UploadSyncError) return Function.prototype[Symbol.hasInstance].call(this, value); // a subclass: the usual rule
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
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

/**
 * `CODE: message`, for a log or stderr line. Node's own messages already start with their code
 * (`EACCES: permission denied, open '…'`): those are left as they are, never `EACCES: EACCES: …`.
 */
export function withCode(code: string, message: string): string {
  return message.startsWith(`${code}:`) ? message : `${code}: ${message}`;
}
