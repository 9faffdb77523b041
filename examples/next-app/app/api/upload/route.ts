import { saveMultipart, UploadSyncError } from 'upload-sync/next';

/** The largest upload (the whole request body); keep nginx's `client_max_body_size` at least this. */
const MAX_BYTES = Number(process.env.UPLOAD_MAX_BYTES ?? 200_000_000);

/** HTTP status for each refusal of saveMultipart; anything else is a 500. */
const STATUS: Record<string, number> = {
  ERR_TOO_LARGE: 413, // Content-Length over MAX_BYTES (refused before reading), or the body went over
  ERR_LIMIT: 413, // too many files or fields, a field too long
  ERR_TYPE: 415, // not audio
  ERR_NOT_MULTIPART: 415, // not multipart/form-data
  ERR_MALFORMED: 400, // a body the parser refuses, or one cut short
  ERR_NO_FILE: 400, // no file part
  ERR_INVALID_NAME: 400,
  ERR_EXISTS: 409,
  ERR_ABORTED: 400, // the client went away: nobody reads this answer, and nothing was kept
};

/**
 * One line in the server's log (PM2's web error log): its time (ISO 8601, UTC), and the message
 * with any newline escaped, never a multi-line object dump.
 */
function logLine(level: 'WARN' | 'ERROR', message: string): void {
  console.error(`[${new Date().toISOString()}] ${level}: ${message.replace(/\r?\n/g, '\\n')}`);
}

// POST multipart/form-data with the file in the field `file`; answers `{ url, name, size, sync }`
// (201), or `{ error, code }` with the status above. The body is streamed to disk as it arrives:
// request.formData() would hold the whole upload in memory first.
export async function POST(request: Request) {
  try {
    const { files } = await saveMultipart(request, { allowedTypes: 'audio', maxBytes: MAX_BYTES, maxFiles: 1 });
    const saved = files[0]!;
    // The upload is saved even when the mirror could not be updated: log it (one line per error: the
    // path, the code, the reason and, for a permission error or a full or read-only disk, the fix), answer 201.
    if (saved.sync && saved.sync.status !== 'ok' && saved.sync.status !== 'disabled') {
      for (const e of saved.sync.errors) logLine('WARN', `upload-sync: ${saved.name} saved, not mirrored: ${e.path || '(run)'}: ${e.code}: ${e.message}`);
    }
    return Response.json({ url: saved.url, name: saved.name, size: saved.size, sync: saved.sync?.status ?? null }, { status: 201 });
  } catch (err) {
    if (err instanceof UploadSyncError && err.code in STATUS) return Response.json({ error: err.message, code: err.code }, { status: STATUS[err.code] });
    // One line: the code, the message, and where it was thrown (the stack's first frame, when it has one).
    const e = (typeof err === 'object' && err !== null ? err : {}) as { code?: unknown; message?: unknown; stack?: unknown };
    const message = typeof e.message === 'string' ? e.message : String(err);
    const code = typeof e.code === 'string' && !message.startsWith(e.code) ? `${e.code}: ` : '';
    const where = typeof e.stack === 'string' ? e.stack.split('\n').find((l) => l.trimStart().startsWith('at '))?.trim() : undefined;
    logLine('ERROR', `upload failed: ${code}${message}${where ? ` (${where})` : ''}`);
    return Response.json({ error: 'The upload failed on the server', code: err instanceof UploadSyncError ? err.code : 'ERR_INTERNAL' }, { status: 500 });
  }
}
