import { saveUpload, UploadSyncError } from 'upload-sync/next';

/** HTTP status for each refusal of saveUpload. */
const STATUS: Record<string, number> = { ERR_TOO_LARGE: 413, ERR_TYPE: 415, ERR_INVALID_NAME: 400, ERR_EXISTS: 409, ERR_ABORTED: 499 };

// POST multipart/form-data with the file in the field `file`; answers `{ url }`.
export async function POST(request: Request) {
  const form = await request.formData();
  const file = form.get('file');
  if (!(file instanceof File)) return Response.json({ error: 'Send the file in the multipart field "file"' }, { status: 400 });
  try {
    const saved = await saveUpload(file, { allowedTypes: 'audio', maxBytes: 200_000_000, signal: request.signal });
    // The upload is saved even when the mirror could not be updated: log it, answer 201.
    if (saved.sync && saved.sync.status !== 'ok' && saved.sync.status !== 'disabled') console.warn('upload-sync:', saved.sync.errors);
    return Response.json({ url: saved.url, name: saved.name, size: saved.size, sync: saved.sync?.status ?? null }, { status: 201 });
  } catch (err) {
    if (err instanceof UploadSyncError && err.code in STATUS) return Response.json({ error: err.message, code: err.code }, { status: STATUS[err.code] });
    throw err;
  }
}
