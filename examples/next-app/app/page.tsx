'use client';

import { useState, type FormEvent } from 'react';

interface Uploaded {
  url: string;
  title: string;
}

export default function Page() {
  const [uploads, setUploads] = useState<Uploaded[]>([]);
  const [status, setStatus] = useState('');

  async function upload(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = event.currentTarget;
    const file = new FormData(form).get('file');
    if (!(file instanceof File) || file.size === 0) return setStatus('Choose an audio file first.');
    setStatus(`Uploading ${file.name}…`);
    const response = await fetch('/api/upload', { method: 'POST', body: new FormData(form) });
    const answer = (await response.json()) as { url?: string; error?: string };
    if (!response.ok || !answer.url) return setStatus(`Upload failed: ${answer.error ?? response.status}`);
    setUploads((list) => [{ url: answer.url!, title: file.name }, ...list]);
    setStatus(`Uploaded ${file.name}: it plays at once, seeking included.`);
    form.reset();
  }

  return (
    <main>
      <h1>Uploads that play at once</h1>
      <p>
        Saved to <code>public/uploads</code> by <code>saveUpload</code>, mirrored into the standalone build, served with
        Range by <code>createUploadsRoute</code>.
      </p>
      <form onSubmit={upload}>
        <input type="file" name="file" accept="audio/*" />
        <button type="submit">Upload</button>
      </form>
      <p role="status">{status}</p>
      <ul style={{ listStyle: 'none', padding: 0 }}>
        {uploads.map((u) => (
          <li key={u.url} style={{ marginBottom: '1rem' }}>
            <div>{u.title}</div>
            <audio controls preload="metadata" src={u.url} />
          </li>
        ))}
      </ul>
    </main>
  );
}
