// saveMultipart through a real HTTP server (bench/upload-server.mjs: node:http turning each request
// into a web Request as Next.js does, and the built package) receiving real multipart bodies.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { saveMultipart, UploadSyncError } from '../src/next.js';
import { ROOT, cleanEnv, readTree, run, tempFiles, tempProject, waitFor } from './helpers.js';

const SERVER = join(ROOT, 'bench', 'upload-server.mjs');
const BOUNDARY = '----upload-sync-test-7MA4YWxkTrZu0gW';
const MULTIPART = `multipart/form-data; boundary=${BOUNDARY}`;

interface Event {
  event: string;
  status?: number;
  code?: string;
  received?: number;
  files?: Array<{ name: string; size: number; url: string; field: string; originalName: string }>;
  fields?: Record<string, string>;
  sync?: string | null;
  port?: number;
}

let p: ReturnType<typeof tempProject>;
let child: ChildProcess | undefined;
let events: Event[] = [];
let port = 0;

beforeEach(() => {
  p = tempProject('upload-sync-multipart-');
  events = [];
});
afterEach(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child!.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }
  child = undefined;
  await p.cleanup();
});

async function start(options: Record<string, unknown> = {}): Promise<void> {
  const all = { root: p.root, source: p.source, dest: p.dest, force: true, lockDir: join(p.root, 'locks'), ...options };
  child = spawn(process.execPath, [SERVER], { env: cleanEnv({ UPLOAD_OPTIONS: JSON.stringify(all) }), stdio: ['ignore', 'pipe', 'inherit'] });
  createInterface({ input: child.stdout! }).on('line', (line) => events.push(JSON.parse(line) as Event));
  await waitFor(() => events.some((e) => e.event === 'listening'), { message: 'the server to listen' });
  port = events.find((e) => e.event === 'listening')!.port!;
}

/** The next outcome of a request (saved or refused) the server logged. */
async function outcome(n = 1): Promise<Event> {
  await waitFor(() => events.filter((e) => e.event !== 'listening').length >= n, { message: 'the server to log the request' });
  return events.filter((e) => e.event !== 'listening')[n - 1]!;
}

type Part = { field: string; value: string } | { field: string; filename: string; type?: string; data: Buffer };

function multipart(parts: Part[], { close = true } = {}): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    if ('value' in part) {
      chunks.push(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${part.field}"\r\n\r\n${part.value}\r\n`));
    } else {
      chunks.push(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${part.field}"; filename="${part.filename}"\r\nContent-Type: ${part.type ?? 'application/octet-stream'}\r\n\r\n`));
      chunks.push(part.data, Buffer.from('\r\n'));
    }
  }
  if (close) chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(chunks);
}

/** A POST with `body` (Content-Length set, unless `chunked`): the status and JSON answer, or the client's error. */
function post(body: Buffer, { contentType = MULTIPART, chunked = false } = {}): Promise<{ status: number; json: Record<string, unknown> } | { error: string }> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = { 'content-type': contentType };
    if (!chunked) headers['content-length'] = String(body.length);
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/api/upload', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', (err) => resolve({ error: err.message }));
    if (!chunked) {
      req.end(body);
      return;
    }
    // Chunked: 64 KiB writes, each after the last is flushed (the server may stop reading).
    let offset = 0;
    const next = () => {
      if (req.destroyed) return;
      if (offset >= body.length) {
        req.end();
        return;
      }
      const slice = body.subarray(offset, offset + 64 * 1024);
      offset += slice.length;
      req.write(slice, next);
    };
    next();
  });
}

/** Nothing left: no temp file and no file, in source or dest; and the server is still up. */
async function nothingLeft(): Promise<void> {
  const up = await fetch(`http://127.0.0.1:${port}/rss`).then((r) => r.status, (err: Error) => err.message);
  expect(up).toBe(200);
  expect(await tempFiles(p.root)).toEqual([]);
  expect(await readTree(p.source)).toEqual({});
  expect(await readTree(p.dest)).toEqual({});
}

describe('saved', () => {
  test('one file and a field: 201, saved under a random name with its extension, mirrored, no temp file', async () => {
    await start({ allowedTypes: 'audio' });
    const data = randomBytes(300_000);
    const r = await post(multipart([{ field: 'title', value: 'Late night' }, { field: 'file', filename: 'My Song.MP3', type: 'audio/mpeg', data }]));
    expect(r).toMatchObject({ status: 201 });
    const e = await outcome();
    expect(e).toMatchObject({ event: 'saved', fields: { title: 'Late night' }, sync: 'ok' });
    expect(e.files).toHaveLength(1);
    const [f] = e.files!;
    expect(f).toMatchObject({ field: 'file', originalName: 'My Song.MP3', size: data.length });
    expect(f!.name).toMatch(/^[0-9a-f-]{36}\.mp3$/);
    expect((await readFile(join(p.source, f!.name))).equals(data)).toBe(true);
    expect((await readFile(join(p.dest, f!.name))).equals(data)).toBe(true);
    expect(await tempFiles(p.root)).toEqual([]);
  });

  test('several files (one of 8 MB, sent chunked) are all saved, in order, with one sync', async () => {
    await start({ folder: 'albums/2026' });
    const files = [randomBytes(10), randomBytes(8 * 1024 * 1024 + 7), randomBytes(70_000)];
    const r = await post(multipart(files.map((data, i) => ({ field: `f${i}`, filename: `t${i}.flac`, data }))), { chunked: true });
    expect(r).toMatchObject({ status: 201 });
    const e = await outcome();
    expect(e.files!.map((f) => [f.field, f.size])).toEqual([['f0', 10], ['f1', files[1]!.length], ['f2', 70_000]]);
    for (const [i, f] of e.files!.entries()) {
      expect(f.name).toMatch(/^albums\/2026\/[0-9a-f-]{36}\.flac$/);
      expect((await readFile(join(p.source, f.name))).equals(files[i]!)).toBe(true);
      expect((await readFile(join(p.dest, f.name))).equals(files[i]!)).toBe(true);
    }
    expect(await tempFiles(p.root)).toEqual([]);
  });
});

describe('refused, nothing left behind', () => {
  test('Content-Length over maxBytes: 413 before the body is read', async () => {
    await start({ maxBytes: 1024 * 1024 });
    // Headers and 1 KiB of a declared 50 MB body; the answer comes without the rest being sent.
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (answer += d));
    socket.on('error', () => undefined);
    socket.write(`POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Type: ${MULTIPART}\r\nContent-Length: 50000000\r\n\r\n`);
    socket.write(multipart([{ field: 'file', filename: 'a.mp3', data: randomBytes(1024) }], { close: false }));
    await waitFor(() => answer.includes("}"), { message: 'the 413 answer' });
    socket.destroy();
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer).toContain('"code":"ERR_TOO_LARGE"');
    expect(await outcome()).toMatchObject({ event: 'refused', code: 'ERR_TOO_LARGE', received: 0 });
    await nothingLeft();
  });

  test('over maxBytes without Content-Length (chunked): refused as the bytes arrive', async () => {
    await start({ maxBytes: 1024 * 1024 });
    const body = multipart([{ field: 'file', filename: 'big.mp3', data: randomBytes(32 * 1024 * 1024) }]);
    const r = await post(body, { chunked: true });
    const e = await outcome();
    expect(e).toMatchObject({ event: 'refused', code: 'ERR_TOO_LARGE' });
    expect(e.received).toBeLessThan(8 * 1024 * 1024); // stopped near the limit, not after 32 MB
    if ('status' in r) expect(r.status).toBe(413); // else the client saw the connection close first
    await nothingLeft();
  });

  test('the client goes away mid-body: ERR_ABORTED, the temp file removed', async () => {
    await start();
    const body = multipart([{ field: 'file', filename: 'a.mp3', data: randomBytes(4 * 1024 * 1024) }]);
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(`POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Type: ${MULTIPART}\r\nContent-Length: ${body.length}\r\n\r\n`);
    socket.write(body.subarray(0, body.length / 2));
    // The part is being written: its temp file is there.
    await waitFor(async () => (await tempFiles(p.source)).length === 1, { message: 'the temp file of the upload' });
    socket.destroy();
    expect(await outcome()).toMatchObject({ event: 'refused', code: 'ERR_ABORTED' });
    await nothingLeft();
  });

  test('the client goes away during the second file: the first, already written, is not kept either', async () => {
    await start();
    const first = multipart([{ field: 'a', filename: 'a.mp3', data: randomBytes(10) }], { close: false });
    const second = Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="b"; filename="b.mp3"\r\n\r\n`);
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(`POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Type: ${MULTIPART}\r\nContent-Length: 10000000\r\n\r\n`);
    socket.write(Buffer.concat([first, second, randomBytes(100_000)]));
    // Both parts have their temp file: the first is whole (its part ended before the second began).
    await waitFor(async () => (await tempFiles(p.source)).length === 2, { message: 'two temp files' });
    socket.destroy();
    expect(await outcome()).toMatchObject({ event: 'refused', code: 'ERR_ABORTED' });
    await nothingLeft();
  });

  test('the second file of a request is refused (type): the first is not kept either', async () => {
    await start({ allowedTypes: 'audio' });
    const r = await post(multipart([
      { field: 'a', filename: 'ok.mp3', data: randomBytes(200_000) },
      { field: 'b', filename: 'evil.html', data: Buffer.from('<script>alert(1)</script>') },
    ]));
    expect(r).toMatchObject({ status: 415, json: { code: 'ERR_TYPE' } });
    await nothingLeft();
  });

  test.each<[string, string, number, () => Buffer, { contentType?: string }]>([
    ['a body cut short (no closing boundary, the part unfinished)', 'ERR_MALFORMED', 400, () => multipart([{ field: 'file', filename: 'a.mp3', data: randomBytes(100_000) }]).subarray(0, 60_000), {}],
    ['a body with no boundary line at all', 'ERR_MALFORMED', 400, () => Buffer.from('just some bytes, not multipart'), {}],
    ['a Content-Type without a boundary', 'ERR_NOT_MULTIPART', 415, () => Buffer.from('x'), { contentType: 'multipart/form-data' }],
    ['JSON', 'ERR_NOT_MULTIPART', 415, () => Buffer.from('{"file":"x"}'), { contentType: 'application/json' }],
    ['fields but no file', 'ERR_NO_FILE', 400, () => multipart([{ field: 'title', value: 'x' }]), {}],
    ['more files than maxFiles (2)', 'ERR_LIMIT', 413, () => multipart([1, 2, 3].map((i) => ({ field: 'f', filename: `${i}.mp3`, data: randomBytes(1000) }))), {}],
    ['a field longer than maxFieldBytes (1024)', 'ERR_LIMIT', 413, () => multipart([{ field: 'file', filename: 'a.mp3', data: randomBytes(1000) }, { field: 'note', value: 'x'.repeat(2000) }]), {}],
  ])('%s: %s, %d', async (_what, code, status, body, { contentType }) => {
    await start({ maxFiles: 2, maxFieldBytes: 1024 });
    const r = await post(body(), { contentType });
    expect(r).toMatchObject({ status, json: { code } });
    expect(await outcome()).toMatchObject({ event: 'refused', code });
    await nothingLeft();
  });
});

describe('the parser is loaded lazily, by the first saveMultipart', () => {
  test.each(['next.js', 'next.cjs'])('dist/%s: importing it and saveUpload load no @fastify/busboy; saveMultipart does', async (entry) => {
    const log = join(p.root, 'events.log');
    const hooks = join(p.root, 'hooks.mjs');
    await writeFile(log, '');
    // The hook sees import() from ESM and CJS alike (the CJS build keeps the dynamic import).
    await writeFile(hooks, `import { appendFileSync } from 'node:fs';
      export async function load(url, context, next) {
        if (url.includes('/node_modules/@fastify/busboy/')) appendFileSync(${JSON.stringify(log)}, 'busboy loaded\\n');
        return next(url, context);
      }`);
    const register = `import { register } from 'node:module'; import { pathToFileURL } from 'node:url'; register(pathToFileURL(${JSON.stringify(hooks)}));`;
    const script = `
      import { appendFileSync } from 'node:fs';
      const mark = (s) => appendFileSync(${JSON.stringify(log)}, s + '\\n');
      const { saveUpload, saveMultipart } = await import(${JSON.stringify(join(ROOT, 'dist', entry))});
      mark('entry imported');
      await saveUpload(new Uint8Array(10), { root: ${JSON.stringify(p.root)}, name: 'a.mp3', sync: false });
      mark('saveUpload done');
      const form = new FormData();
      form.append('file', new File(['x'], 'b.mp3'));
      const saved = await saveMultipart(new Request('http://x/', { method: 'POST', body: form }), { root: ${JSON.stringify(p.root)}, sync: false });
      mark('saveMultipart done ' + saved.files.length);`;
    const r = await run(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(register)}`, '--input-type=module', '-e', script], { env: cleanEnv() });
    expect(r.stderr).toBe('');
    expect((await readFile(log, 'utf8')).trim().split('\n').filter((l, i, all) => all.indexOf(l) === i)).toEqual(['entry imported', 'saveUpload done', 'busboy loaded', 'saveMultipart done 1']);
  });
});

describe('in process: arguments and signals', () => {
  const opts = () => ({ root: p.root, sync: false });
  const form = () => {
    const f = new FormData();
    f.append('file', new File([randomBytes(1000)], 'a.mp3'));
    return f;
  };
  const refused = async (promise: Promise<unknown>) => {
    const err = await promise.then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(UploadSyncError);
    return (err as UploadSyncError).code;
  };

  test('a Request built from FormData is saved (what a test or a fetch handler would pass)', async () => {
    const saved = await saveMultipart(new Request('http://x/', { method: 'POST', body: form() }), opts());
    expect(saved.files.map((f) => [f.field, f.originalName, f.size])).toEqual([['file', 'a.mp3', 1000]]);
    expect(saved.sync).toBeNull();
  });

  test.each<[string, string, () => Promise<unknown>]>([
    ['not a Request', 'ERR_CONFIG', () => saveMultipart({} as never, opts())],
    ['maxFiles: 0', 'ERR_CONFIG', () => saveMultipart(new Request('http://x/', { method: 'POST', body: form() }), { ...opts(), maxFiles: 0 })],
    ['maxFieldBytes: "1k"', 'ERR_CONFIG', () => saveMultipart(new Request('http://x/', { method: 'POST', body: form() }), { ...opts(), maxFieldBytes: '1k' as never })],
    ['fsync: "yes"', 'ERR_CONFIG', () => saveMultipart(new Request('http://x/', { method: 'POST', body: form() }), { ...opts(), fsync: 'yes' as never })],
    ['a signal aborted already', 'ERR_ABORTED', () => saveMultipart(new Request('http://x/', { method: 'POST', body: form() }), { ...opts(), signal: AbortSignal.abort() })],
    ['request.signal aborted already', 'ERR_ABORTED', () => {
      const c = new AbortController();
      const r = new Request('http://x/', { method: 'POST', body: form(), signal: c.signal });
      c.abort();
      return saveMultipart(r, opts());
    }],
    ['a GET (no body)', 'ERR_NO_FILE', () => saveMultipart(new Request('http://x/', { headers: { 'content-type': MULTIPART } }), opts())],
  ])('%s: %s', async (_what, code, call) => {
    expect(await refused(call())).toBe(code);
    expect(await tempFiles(p.root)).toEqual([]);
    expect(await readTree(p.source)).toEqual({});
  });

  test('an abort while a part streams: ERR_ABORTED, no temp file', async () => {
    const controller = new AbortController();
    const head = Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\n\r\n`);
    let n = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        if (n++ === 0) return c.enqueue(new Uint8Array(head));
        if ((await tempFiles(p.source)).length > 0) controller.abort(); // the part's temp file is there
        c.enqueue(new Uint8Array(64 * 1024));
      },
    });
    const r = new Request('http://x/', { method: 'POST', body, duplex: 'half', headers: { 'content-type': MULTIPART } } as RequestInit);
    // maxBytes: a broken abort ends as ERR_TOO_LARGE rather than never.
    expect(await refused(saveMultipart(r, { ...opts(), signal: controller.signal, maxBytes: 50 * 1024 * 1024 }))).toBe('ERR_ABORTED');
    expect(await tempFiles(p.root)).toEqual([]);
    expect(await readTree(p.source)).toEqual({});
  });
});
