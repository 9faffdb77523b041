/**
 * examples/nginx/upload-sync.conf in a real nginx (Debian's, installed by .ci/run), with a small
 * HTTP server standing in for Next so that what nginx passes on is seen. The README shows this
 * file verbatim. The browser end to end through nginx and the real app is page.e2e.test.ts.
 */
import { mkdtempSync, realpathSync } from 'node:fs';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { AUDIO_EXTENSIONS } from '../src/config/parse.js';
import { contentTypeOf } from '../src/next/mime.js';
import { isIgnoredName } from '../src/shared/filter.js';
import { ROOT } from './helpers.js';
import { NGINX_CONF, bodyLimitOf, startNginx, type StartedNginx } from './nginx-helpers.js';
import { get } from './next-helpers.js';

let work = '';
let uploads = '';
let nginx: StartedNginx | undefined;
let upstream: Server | undefined;
/** What reached the stand-in for Next: method, URL, body bytes. */
const passed: { method: string; url: string; bytes: number }[] = [];
const SONG = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 251));

beforeAll(async () => {
  work = realpathSync(mkdtempSync(join(tmpdir(), 'upload-sync-nginx-')));
  uploads = join(work, 'app', 'public', 'uploads');
  await mkdir(uploads, { recursive: true });
  upstream = createServer((req, res) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      passed.push({ method: req.method!, url: req.url!, bytes });
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`from upstream ${req.method} ${req.url}`);
    });
  });
  await new Promise<void>((r) => upstream!.listen(0, '127.0.0.1', r));
  const { port } = upstream.address() as { port: number };
  nginx = await startNginx(join(work, 'nginx'), join(work, 'app', 'public'), `127.0.0.1:${port}`);
});

afterAll(async () => {
  await nginx?.stop();
  await new Promise((r) => (upstream ? upstream.close(r) : r(undefined)));
  if (work !== '') await rm(work, { recursive: true, force: true });
});

const fromUpstream = (url: string) => passed.some((p) => p.url === url);

describe('the nginx block as users copy it', () => {
  test('README shows examples/nginx/upload-sync.conf verbatim', async () => {
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    const blocks = [...readme.matchAll(/```nginx\n([\s\S]*?)```/g)].map((m) => m[1]);
    expect(blocks).toHaveLength(1);
    expect(blocks[0]).toBe(await readFile(NGINX_CONF, 'utf8'));
  });

  test("client_max_body_size fits the example route's maxBytes (with room for the multipart framing, not far above)", async () => {
    const route = await readFile(join(ROOT, 'examples', 'next-app', 'app', 'api', 'upload', 'route.ts'), 'utf8');
    // A literal, or the default of an environment override (`Number(process.env.X ?? 200_000_000)`).
    const m = /maxBytes\s*[:=]\s*([\d_]+)|MAX_BYTES\s*=\s*(?:Number\(process\.env\.\w+\s*\?\?\s*)?([\d_]+)/.exec(route);
    if (m === null) throw new Error('examples/next-app/app/api/upload/route.ts: no literal maxBytes found (update this test with the route)');
    const maxBytes = Number((m[1] ?? m[2])!.replace(/_/g, ''));
    const limit = bodyLimitOf(await readFile(NGINX_CONF, 'utf8'));
    expect(limit).toBeGreaterThanOrEqual(maxBytes + 64 * 1024);
    expect(limit).toBeLessThanOrEqual(maxBytes + 16 * 1024 * 1024);
  });

  test('an upload of 2 MiB reaches the app (nginx\'s default 1m would answer 413); over the limit is a 413 that never reaches it', async () => {
    const body = Buffer.alloc(2 * 1024 * 1024, 1);
    const ok = await post(`${nginx!.base}/api/upload`, body.length, body);
    expect(ok.status).toBe(200);
    expect(passed.find((p) => p.url === '/api/upload')?.bytes).toBe(body.length);

    const limit = bodyLimitOf(await readFile(NGINX_CONF, 'utf8'));
    const before = passed.length;
    const over = await post(`${nginx!.base}/api/upload?over`, limit + 1); // refused on Content-Length: nothing sent
    expect(over.status).toBe(413);
    expect(over.contentType).toBe('text/html'); // what the page must cope with: not JSON
    expect(passed.length).toBe(before);
    // The raised limit is the upload route's only: elsewhere nginx keeps its default.
    expect((await post(`${nginx!.base}/api/other`, body.length, body)).status).toBe(413);
  });

  test('every extension of the audio preset (and cover images) has the route\'s Content-Type, not octet-stream', async () => {
    const names = [...AUDIO_EXTENSIONS, 'jpg', 'jpeg', 'png', 'webp', 'WAV', 'Flac'].map((ext) => `type-test.${ext}`);
    for (const name of names) await writeFile(join(uploads, name), SONG);
    const got: Record<string, unknown> = {};
    const want: Record<string, unknown> = {};
    for (const name of names) {
      const res = await get(`${nginx!.base}/uploads/${name}`);
      got[name] = `${res.status} ${String(res.headers['content-type'])} ${String(res.headers.server).split('/')[0]}`;
      want[name] = `200 ${contentTypeOf(name)} nginx`;
    }
    expect(got).toEqual(want);
    expect(contentTypeOf('x.wav')).toBe('audio/wav');
  });

  test('a file on disk: Range is a 206 of those bytes, ETag a 304, with nosniff and a sandbox CSP', async () => {
    await writeFile(join(uploads, 'song.mp3'), SONG);
    const part = await get(`${nginx!.base}/uploads/song.mp3`, { Range: 'bytes=100-199' });
    expect(part.status).toBe(206);
    expect(part.headers['content-range']).toBe(`bytes 100-199/${SONG.length}`);
    expect(part.body.equals(SONG.subarray(100, 200))).toBe(true);
    expect(part.headers['x-content-type-options']).toBe('nosniff');
    expect(part.headers['content-security-policy']).toBe('sandbox');
    const again = await get(`${nginx!.base}/uploads/song.mp3`, { 'If-None-Match': String(part.headers.etag) });
    expect(again.status).toBe(304);
    expect(fromUpstream('/uploads/song.mp3')).toBe(false);
  });

  test('html and svg are never served as what they are (no stored XSS from the upload folder)', async () => {
    await writeFile(join(uploads, 'evil.html'), '<script>alert(1)</script>');
    await writeFile(join(uploads, 'evil.svg'), '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>');
    for (const name of ['evil.html', 'evil.svg']) {
      const res = await get(`${nginx!.base}/uploads/${name}`);
      expect(res.headers['content-type']).toBe('application/octet-stream');
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['content-security-policy']).toBe('sandbox');
    }
  });

  // Each path exists on disk; upload-sync's filter (the oracle) says which ones are never served.
  const paths = [
    'a.mp3.part', 'a.mp3.PART', 'a.mp3.Partial', 'a.mp3.crdownload', 'a.mp3.CRDOWNLOAD', 'a.mp3.tmp', 'a.mp3.TMP', 'a.mp3~',
    '.hidden.mp3', '.upload-sync-1234-abcd.tmp', 'dir.PART/a.mp3', 'dir~/a.mp3', '.dot/a.mp3',
    'part.mp3', 'tmp.mp3', 'a.partial.mp3', 'a.mp3.parts', 'crdownload', 'dir.tmpx/a.mp3', 'a.b/c.mp3',
  ];
  test.each(paths)('/uploads/%s is served exactly when upload-sync would sync it', async (rel) => {
    await mkdir(join(uploads, rel, '..'), { recursive: true });
    await writeFile(join(uploads, rel), `content of ${rel}`);
    const served = !rel.split('/').some(isIgnoredName);
    const res = await get(`${nginx!.base}/uploads/${rel}`);
    expect({ status: res.status, body: res.body.toString() }).toEqual(
      served ? { status: 200, body: `content of ${rel}` } : { status: 404, body: expect.not.stringContaining('content of') },
    );
    expect(fromUpstream(`/uploads/${rel}`)).toBe(false);
  });

  test.each([
    ['an encoded dot', '/uploads/%2ehidden.mp3', '.hidden.mp3'],
    ['an encoded upper-case suffix', '/uploads/b.mp3.%50ART', 'b.mp3.PART'],
  ])('%s is decoded before the rules apply: %s is a 404', async (_what, url, onDisk) => {
    await writeFile(join(uploads, onDisk), 'SECRET partial');
    const res = await get(`${nginx!.base}${url}`);
    expect(res.status).toBe(404);
    expect(res.body.toString()).not.toContain('SECRET');
  });

  test('symlinks are never followed by nginx: a link out of the folder (file or folder) goes to the app, whose route refuses it', async () => {
    await writeFile(join(work, 'secret.mp3'), 'SECRET outside the uploads');
    await mkdir(join(work, 'outside'));
    await writeFile(join(work, 'outside', 'a.mp3'), 'SECRET in a folder outside');
    await symlink(join(work, 'secret.mp3'), join(uploads, 'out.mp3'));
    await symlink(join(work, 'outside'), join(uploads, 'outdir'));
    for (const url of ['/uploads/out.mp3', '/uploads/outdir/a.mp3']) {
      const res = await get(`${nginx!.base}${url}`);
      expect(res.body.toString()).toBe(`from upstream GET ${url}`);
    }
  });

  test('a file not on disk goes to the app (its route serves the mirror and fresh uploads)', async () => {
    const res = await get(`${nginx!.base}/uploads/missing.mp3`);
    expect(res.body.toString()).toBe('from upstream GET /uploads/missing.mp3');
  });
});

/** A POST with `contentLength` announced; `body` is sent if given (else only the headers: nginx answers on them). */
function post(url: string, contentLength: number, body?: Buffer): Promise<{ status: number; contentType: string }> {
  const { hostname, port, pathname, search } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { hostname, port, path: pathname + search, method: 'POST', agent: false, headers: { 'content-type': 'application/octet-stream', 'content-length': contentLength } },
      (res) => {
        res.resume();
        res.on('end', () => {
          resolve({ status: res.statusCode!, contentType: String(res.headers['content-type']) });
          req.destroy(); // a refused body is never sent
        });
      },
    );
    req.on('error', reject);
    if (body) req.end(body);
    else req.flushHeaders();
  });
}
