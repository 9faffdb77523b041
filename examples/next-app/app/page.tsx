'use client';

import { useEffect, useRef, useState, type FormEvent } from 'react';
import { sendUpload, type UploadRequest } from './send-upload';

interface Uploaded {
  url: string;
  title: string;
}

type Status =
  | { kind: 'idle'; message: string }
  | { kind: 'uploading'; name: string; sent: number; total: number }
  | { kind: 'done'; message: string }
  | { kind: 'error'; message: string };

const megabytes = (n: number) => `${(n / 1_000_000).toFixed(1)} MB`;

export default function Page() {
  const [uploads, setUploads] = useState<Uploaded[]>([]);
  const [status, setStatus] = useState<Status>({ kind: 'idle', message: '' });
  // The request in flight. A ref, not state: a double click sends its second submit before React
  // re-renders the disabled button, and this is what turns that second submit away.
  const inFlight = useRef<UploadRequest | null>(null);

  // Leaving the page cancels the upload rather than letting it finish unseen.
  useEffect(() => () => inFlight.current?.cancel(), []);

  async function upload(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    if (inFlight.current !== null) return;
    const form = event.currentTarget;
    const file = new FormData(form).get('file');
    if (!(file instanceof File) || file.name === '') return setStatus({ kind: 'error', message: 'Choose an audio file first.' });
    const request = sendUpload(file, '/api/upload', (sent, total) => setStatus({ kind: 'uploading', name: file.name, sent, total }));
    inFlight.current = request;
    setStatus({ kind: 'uploading', name: file.name, sent: 0, total: file.size });
    const outcome = await request.done;
    inFlight.current = null;
    switch (outcome.kind) {
      case 'saved':
        setUploads((list) => [{ url: outcome.url, title: file.name }, ...list]);
        setStatus({ kind: 'done', message: `Uploaded ${file.name}: it plays at once, seeking included.` });
        form.reset();
        break;
      case 'refused':
        setStatus({ kind: 'error', message: `Upload refused (${outcome.status}): ${outcome.message}` });
        break;
      case 'failed':
        setStatus({ kind: 'error', message: `Upload failed: ${outcome.message}` });
        break;
      case 'cancelled':
        setStatus({ kind: 'idle', message: `Upload of ${file.name} cancelled.` });
        break;
    }
  }

  const uploading = status.kind === 'uploading';
  return (
    <main>
      <h1>Uploads that play at once</h1>
      <p>
        Saved to <code>public/uploads</code> by <code>saveUpload</code>, mirrored into the standalone build, served with
        Range by <code>createUploadsRoute</code>.
      </p>
      <form onSubmit={upload}>
        <input type="file" name="file" accept="audio/*" disabled={uploading} />
        <button type="submit" disabled={uploading}>
          Upload
        </button>
        {uploading && (
          <button type="button" onClick={() => inFlight.current?.cancel()}>
            Cancel
          </button>
        )}
      </form>
      {uploading && <progress value={status.sent} max={status.total || 1} style={{ width: '100%' }} />}
      <p role={status.kind === 'error' ? 'alert' : 'status'} style={status.kind === 'error' ? { color: 'crimson' } : undefined}>
        {uploading
          ? `Uploading ${status.name}… ${Math.floor((100 * status.sent) / (status.total || 1))}% (${megabytes(status.sent)} of ${megabytes(status.total)})`
          : status.message}
      </p>
      <ul style={{ listStyle: 'none', padding: 0 }}>
        {uploads.map((u) => (
          <li key={u.url} style={{ marginBottom: '1rem' }}>
            <div>
              {u.title}: <a href={u.url}>{u.url}</a>
            </div>
            <audio controls preload="metadata" src={u.url} />
          </li>
        ))}
      </ul>
    </main>
  );
}
