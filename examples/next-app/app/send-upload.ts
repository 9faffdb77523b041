// The browser side of an upload: XMLHttpRequest, because fetch() reports no upload progress.
// Every way a request can end settles the promise once (loaded, refused, failed, cancelled), so a
// page built on it is never left on "Uploading…": not by an HTML 413 from a proxy, a 500, a
// dropped connection or an answer that is not the JSON the route sends.

/** How an upload ended. `message` is for people; `status` is 0 when no HTTP answer came. */
export type UploadOutcome =
  | { kind: 'saved'; url: string }
  | { kind: 'refused'; status: number; message: string; code?: string }
  | { kind: 'failed'; message: string }
  | { kind: 'cancelled' };

export interface UploadRequest {
  /** Settles once, never rejects. */
  done: Promise<UploadOutcome>;
  /** Stops the upload (the server sees the connection close and keeps nothing). */
  cancel(): void;
}

/** POSTs `file` as the multipart field `file` to `endpoint`; `onProgress` gets bytes sent of the whole body. */
export function sendUpload(file: File, endpoint: string, onProgress: (sent: number, total: number) => void): UploadRequest {
  const xhr = new XMLHttpRequest();
  const body = new FormData();
  body.append('file', file);
  const done = new Promise<UploadOutcome>((resolve) => {
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) onProgress(e.loaded, e.total);
    });
    xhr.addEventListener('load', () => resolve(outcomeOf(xhr.status, xhr.statusText, xhr.responseText)));
    xhr.addEventListener('abort', () => resolve({ kind: 'cancelled' }));
    xhr.addEventListener('timeout', () => resolve({ kind: 'failed', message: 'the server took too long to answer' }));
    // No HTTP answer: the connection dropped. A proxy that refuses a body while it is still being sent
    // (nginx's 413) can end this way too, since the browser may not read the answer before the reset.
    xhr.addEventListener('error', () =>
      resolve({ kind: 'failed', message: 'the connection was lost before the server answered (network error, or a proxy refused the upload)' }),
    );
    // A last guard: `loadend` follows every one of the above; resolving twice is a no-op.
    xhr.addEventListener('loadend', () => resolve({ kind: 'failed', message: 'the upload ended without an answer' }));
  });
  xhr.open('POST', endpoint);
  xhr.setRequestHeader('Accept', 'application/json');
  xhr.send(body);
  return { done, cancel: () => xhr.abort() };
}

/** Reads an answer that may be the route's JSON, a proxy's HTML page, or nothing. */
export function outcomeOf(status: number, statusText: string, text: string): UploadOutcome {
  let json: { url?: unknown; error?: unknown; code?: unknown } | undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed !== null && typeof parsed === 'object') json = parsed;
  } catch {
    // not JSON: a proxy's or the framework's error page
  }
  if (status >= 200 && status < 300) {
    if (typeof json?.url === 'string') return { kind: 'saved', url: json.url };
    return { kind: 'failed', message: `the server answered ${status} without the file's URL` };
  }
  const code = typeof json?.code === 'string' ? json.code : undefined;
  if (typeof json?.error === 'string') return { kind: 'refused', status, message: json.error, code };
  const message = STATUS_MESSAGES[status] ?? `the server answered ${`${status} ${statusText}`.trim()}`;
  // A 5xx without the route's JSON is a failure (a crash, the app down), not a refusal of this file.
  return status >= 500 ? { kind: 'failed', message } : { kind: 'refused', status, message };
}

/** What a status means here when the answer says nothing we can read. */
const STATUS_MESSAGES: Record<number, string> = {
  413: 'the file is larger than the server accepts',
  502: 'the app behind the proxy is not answering (502)',
  503: 'the server is unavailable, try again later (503)',
  504: 'the app took too long to answer (504)',
};
