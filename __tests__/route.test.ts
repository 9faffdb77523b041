import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdir, symlink, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { createUploadsRoute, UploadSyncError as NextUploadSyncError } from '../src/next.js';
import { UploadSyncError } from '../src/index.js';
import { checkSegments, fileBody, requestSegments } from '../src/next/route-serve.js';
import { ROOT, run, tempProject, writeTree } from './helpers.js';

let p: ReturnType<typeof tempProject>;
/** 1000 distinct-enough bytes, so a wrong offset shows. */
const SONG = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7 + (i >> 8)) & 0xff));

beforeEach(async () => {
  p = tempProject('upload-sync-route-');
  await writeTree(p.source, { 'song.mp3': SONG, 'albums/Late Night/Café 曲.flac': 'flac bytes', 'cover.jpg': 'jpg', 'notes.txt': 'hello' });
  await writeTree(p.root, { 'secret.mp3': 'SECRET', '.next/standalone/secret.mp3': 'SECRET', 'public/other.mp3': 'SECRET' });
});
afterEach(async () => {
  await p.cleanup();
});

const routeOf = (extra: Parameters<typeof createUploadsRoute>[0] = {}) => createUploadsRoute({ root: p.root, source: p.source, dest: p.dest, ...extra });
const request = (path: string, headers: Record<string, string> = {}, method = 'GET') => new Request(`http://localhost${path}`, { headers, method });
const get = (path: string, headers: Record<string, string> = {}, extra?: Parameters<typeof createUploadsRoute>[0]) => routeOf(extra).GET(request(path, headers));
const bytes = async (res: Response) => Buffer.from(await res.arrayBuffer());

describe('200 and HEAD', () => {
  test('GET streams the exact bytes with the headers a media player needs', async () => {
    const res = await get('/uploads/song.mp3');
    expect(res.status).toBe(200);
    expect(Object.fromEntries(res.headers)).toMatchObject({
      'accept-ranges': 'bytes',
      'cache-control': 'public, max-age=0, no-transform',
      'content-length': '1000',
      'content-type': 'audio/mpeg',
      'x-content-type-options': 'nosniff',
    });
    expect(res.headers.get('etag')).toMatch(/^"3e8-[0-9a-f]+"$/);
    expect(new Date(res.headers.get('last-modified')!).getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect((await bytes(res)).equals(SONG)).toBe(true);
  });

  test('HEAD sends the same headers and no body', async () => {
    const route = routeOf();
    const [g, h] = await Promise.all([route.GET(request('/uploads/song.mp3')), route.HEAD(request('/uploads/song.mp3', {}, 'HEAD'))]);
    await g.body?.cancel();
    expect(h.status).toBe(200);
    expect(h.body).toBeNull();
    expect(Object.fromEntries(h.headers)).toEqual(Object.fromEntries(g.headers));
  });

  test('HEAD with a Range answers 206 headers only', async () => {
    const h = await routeOf().HEAD(request('/uploads/song.mp3', { range: 'bytes=0-1' }, 'HEAD'));
    expect(h.status).toBe(206);
    expect(h.body).toBeNull();
    expect(h.headers.get('content-range')).toBe('bytes 0-1/1000');
    expect(h.headers.get('content-length')).toBe('2');
  });

  test('a unicode name in a subfolder, percent-encoded in the URL', async () => {
    const res = await get(`/uploads/albums/${encodeURIComponent('Late Night')}/${encodeURIComponent('Café 曲.flac')}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('audio/flac');
    expect((await bytes(res)).toString()).toBe('flac bytes');
  });

  test('an empty file is 200 with Content-Length 0', async () => {
    await writeFile(join(p.source, 'empty.ogg'), '');
    const res = await get('/uploads/empty.ogg');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe('0');
    expect((await bytes(res)).length).toBe(0);
  });

  test('a file that appears after the route was made is served at once', async () => {
    const route = routeOf();
    expect((await route.GET(request('/uploads/fresh.mp3'))).status).toBe(404);
    await writeFile(join(p.source, 'fresh.mp3'), 'fresh');
    const res = await route.GET(request('/uploads/fresh.mp3'));
    expect(res.status).toBe(200);
    expect((await bytes(res)).toString()).toBe('fresh');
  });
});

describe('Range', () => {
  test.each<[string, number, number]>([
    ['bytes=100-199', 100, 199],
    ['bytes=0-0', 0, 0],
    ['bytes=999-', 999, 999],
    ['bytes=900-', 900, 999],
    ['bytes=-100', 900, 999],
    ['bytes=-5000', 0, 999],
    ['bytes=500-100000', 500, 999],
    ['bytes=0-9,5-19', 0, 19],
  ])('%s -> 206 with bytes %d-%d exactly', async (range, start, end) => {
    const res = await get('/uploads/song.mp3', { range });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes ${start}-${end}/1000`);
    expect(res.headers.get('content-length')).toBe(String(end - start + 1));
    expect((await bytes(res)).equals(SONG.subarray(start, end + 1))).toBe(true);
  });

  test.each(['bytes=1000-', 'bytes=5000-6000', 'bytes=-0'])('%s -> 416 with Content-Range: bytes */1000', async (range) => {
    const res = await get('/uploads/song.mp3', { range });
    expect(res.status).toBe(416);
    expect(res.headers.get('content-range')).toBe('bytes */1000');
    expect(res.headers.get('accept-ranges')).toBe('bytes');
  });

  test.each(['bytes=0-9,100-109', 'bytes=abc', 'items=0-9'])('%s -> 200 with the whole file', async (range) => {
    const res = await get('/uploads/song.mp3', { range });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-range')).toBeNull();
    expect((await bytes(res)).equals(SONG)).toBe(true);
  });

  test('If-Range: a matching ETag or date keeps the range; a stale one gets the whole file', async () => {
    const first = await get('/uploads/song.mp3');
    await first.body?.cancel();
    const etag = first.headers.get('etag')!;
    const lastModified = first.headers.get('last-modified')!;
    expect((await get('/uploads/song.mp3', { range: 'bytes=0-9', 'if-range': etag })).status).toBe(206);
    expect((await get('/uploads/song.mp3', { range: 'bytes=0-9', 'if-range': lastModified })).status).toBe(206);
    const stale = await get('/uploads/song.mp3', { range: 'bytes=0-9', 'if-range': '"stale"' });
    expect(stale.status).toBe(200);
    expect((await bytes(stale)).length).toBe(1000);
    expect((await get('/uploads/song.mp3', { range: 'bytes=5000-', 'if-range': '"stale"' })).status).toBe(200);
  });
});

describe('conditional requests', () => {
  test('If-None-Match and If-Modified-Since give 304 with the validators and no body', async () => {
    const first = await get('/uploads/song.mp3');
    await first.body?.cancel();
    const etag = first.headers.get('etag')!;
    for (const headers of [{ 'if-none-match': etag }, { 'if-none-match': `W/${etag}` }, { 'if-modified-since': first.headers.get('last-modified')! }] as Record<string, string>[]) {
      const res = await get('/uploads/song.mp3', headers);
      expect(res.status).toBe(304);
      expect(res.body).toBeNull();
      expect(res.headers.get('etag')).toBe(etag);
      expect(res.headers.get('cache-control')).toBe('public, max-age=0, no-transform');
    }
    expect((await get('/uploads/song.mp3', { 'if-none-match': etag, 'cache-control': 'no-cache' })).status).toBe(200);
    expect((await get('/uploads/song.mp3', { 'if-none-match': '"other"' })).status).toBe(200);
  });

  test('a changed file gets a new ETag', async () => {
    const before = (await get('/uploads/song.mp3', { range: 'bytes=0-0' })).headers.get('etag');
    const later = new Date(Date.now() + 10_000);
    await utimes(join(p.source, 'song.mp3'), later, later);
    const after = await get('/uploads/song.mp3', { 'if-none-match': before! });
    expect(after.status).toBe(200);
    expect(after.headers.get('etag')).not.toBe(before);
    await after.body?.cancel();
  });

  test('If-Match that fails and an old If-Unmodified-Since give 412', async () => {
    expect((await get('/uploads/song.mp3', { 'if-match': '"other"' })).status).toBe(412);
    expect((await get('/uploads/song.mp3', { 'if-unmodified-since': 'Mon, 01 Jan 2001 00:00:00 GMT' })).status).toBe(412);
    expect((await get('/uploads/song.mp3', { 'if-match': '*' })).status).toBe(200);
  });
});

describe('source first, then the mirror', () => {
  test('a file only in dest is served; source wins when both have it; fallbackToDest: false serves source only', async () => {
    await writeTree(p.dest, { 'old.mp3': 'from the mirror', 'song.mp3': 'stale mirror copy' });
    expect((await bytes(await get('/uploads/old.mp3'))).toString()).toBe('from the mirror');
    expect((await bytes(await get('/uploads/song.mp3'))).equals(SONG)).toBe(true);
    expect((await get('/uploads/old.mp3', {}, { fallbackToDest: false })).status).toBe(404);
  });
});

describe('hostile and odd paths: never a 2xx', () => {
  beforeEach(async () => {
    await writeTree(p.source, { '.hidden.mp3': 'dot', '.upload-sync-123-abc.tmp': 'temp', 'up.mp3.part': 'partial', 'sub/.env': 'x', 'x~': 'backup', 'a\\b.mp3': 'backslash' });
    await mkdir(join(p.root, 'outside'), { recursive: true });
    await writeFile(join(p.root, 'outside', 'secret.mp3'), 'SECRET');
    await symlink(join(p.root, 'outside'), join(p.source, 'linked-out'));
    await symlink(join(p.root, 'secret.mp3'), join(p.source, 'link-out.mp3'));
    await symlink(join(p.dest, '..'), join(p.source, 'link-dest'));
  });

  test.each<[string, number]>([
    // Bad encoding and NUL: 400.
    ['/uploads/%E0%A4%A', 400],
    ['/uploads/a%ZZb.mp3', 400],
    ['/uploads/%C0%AE%C0%AE/secret.mp3', 400], // overlong UTF-8 dots
    ['/uploads/song.mp3%00.jpg', 400],
    ['/uploads/%00', 400],
    // Traversal: 403 (encoded slash or backslash inside a segment), or 404 once the URL parser
    // has resolved dot segments (the path is then no longer under /uploads).
    ['/uploads/..%2fsecret.mp3', 403],
    ['/uploads/..%2F..%2Fsecret.mp3', 403],
    ['/uploads/%2e%2e%2fsecret.mp3', 403],
    ['/uploads/albums%2f..%2f..%2fsecret.mp3', 403],
    ['/uploads/..%5csecret.mp3', 403],
    ['/uploads/a%5cb.mp3', 403],
    ['/uploads/%2e%2e/secret.mp3', 404],
    ['/uploads/%2E%2E/%2E%2E/secret.mp3', 404],
    ['/uploads/../secret.mp3', 404],
    ['/uploads/..\\secret.mp3', 404],
    ['/uploads/sub/../../secret.mp3', 404],
    // Double-encoded: decoded once, it is a literal name that does not exist.
    ['/uploads/%252e%252e/secret.mp3', 404],
    ['/uploads/..%252fsecret.mp3', 404],
    // Dotfiles (our temp files among them) and partial uploads: hidden, 404.
    ['/uploads/.hidden.mp3', 404],
    ['/uploads/%2ehidden.mp3', 404],
    ['/uploads/.upload-sync-123-abc.tmp', 404],
    ['/uploads/up.mp3.part', 404],
    ['/uploads/sub/.env', 404],
    ['/uploads/x~', 404],
    // Folders, empty segments, missing files.
    ['/uploads/albums', 404],
    ['/uploads/albums/', 404],
    ['/uploads/albums//Late%20Night', 404],
    ['/uploads/', 404],
    ['/uploads', 404],
    ['/uploadsX/song.mp3', 404],
    ['/uploads/missing.mp3', 404],
    ['/uploads/song.mp3/x', 404],
    [`/uploads/${'a'.repeat(300)}.mp3`, 404],
    // Symlinks leaving the folder.
    ['/uploads/link-out.mp3', 404],
    ['/uploads/linked-out/secret.mp3', 404],
    ['/uploads/link-dest/secret.mp3', 404],
  ])('%s -> %d', async (path, status) => {
    const route = routeOf();
    const res = await route.GET(request(path));
    expect(res.status).toBe(status);
    const body = await bytes(res);
    expect(body.toString()).not.toContain('SECRET');
    const head = await route.HEAD(request(path, {}, 'HEAD'));
    expect(head.status).toBe(status);
    expect(head.body).toBeNull();
  });

  test('a symlink to a file inside the source is served, as the sync mirrors it', async () => {
    await symlink(join(p.source, 'song.mp3'), join(p.source, 'alias.mp3'));
    const res = await get('/uploads/alias.mp3');
    expect(res.status).toBe(200);
    expect((await bytes(res)).equals(SONG)).toBe(true);
  });

  test('the extension filter bounds what is served', async () => {
    expect((await get('/uploads/cover.jpg', {}, { extensions: 'audio' })).status).toBe(404);
    expect((await get('/uploads/song.mp3', {}, { extensions: 'audio' })).status).toBe(200);
  });

  test.each<[string[], number | 'ok']>([
    [['a.mp3'], 'ok'],
    [['a%20b', 'c.mp3'], 'ok'],
    [['%E0%A4%A'], 400],
    [['a%00'], 400],
    [['..'], 403],
    [['.'], 403],
    [['a', '..', 'b'], 403],
    [['%2e%2e'], 403],
    [['a%2Fb'], 403],
    [['a%5Cb'], 403],
    [['a\\b'], 403],
    [['a', ''], 404],
    [[], 404],
  ])('checkSegments(%j) -> %s', (raw, expected) => {
    const r = checkSegments(raw);
    if (expected === 'ok') expect(r.ok).toBe(true);
    else expect(r).toEqual({ ok: false, status: expected });
  });
});

describe('where the route is mounted', () => {
  const params = (path: string[]) => ({ params: Promise.resolve({ path }) });

  test('with Next\'s params the route works under any folder and basePath', async () => {
    const route = routeOf();
    const media = await route.GET(request('/media/song.mp3'), params(['song.mp3']));
    expect(media.status).toBe(200);
    await media.body?.cancel();
    const based = await route.GET(request('/app/uploads/albums/Late%20Night/Caf%C3%A9%20%E6%9B%B2.flac'), params(['albums', 'Late Night', 'Café 曲.flac']));
    expect(based.status).toBe(200);
    expect((await bytes(based)).toString()).toBe('flac bytes');
  });

  test('Next\'s decoded params are never trusted: an encoded slash in the URL is refused', async () => {
    // Next hands `/uploads/..%2fsecret.mp3` to the handler as params.path ['../secret.mp3'].
    expect((await routeOf().GET(request('/uploads/..%2fsecret.mp3'), params(['../secret.mp3']))).status).toBe(403);
    expect(await requestSegments('http://x/uploads/a%2Fb', params(['a/b']), undefined)).toEqual(['a%2Fb']);
  });

  test('params that do not match the URL fall back to /uploads', async () => {
    expect(await requestSegments('http://x/uploads/song.mp3', params(['other.mp3']), undefined)).toEqual(['song.mp3']);
    expect(await requestSegments('http://x/media/song.mp3', params(['other.mp3']), undefined)).toBeNull();
    expect(await requestSegments('http://x/uploads/song.mp3', { params: Promise.resolve({}) }, undefined)).toEqual(['song.mp3']);
  });

  test('an explicit urlPrefix wins', async () => {
    const res = await routeOf({ urlPrefix: '/files/' }).GET(request('/files/song.mp3'), params(['nope']));
    expect(res.status).toBe(200);
    await res.body?.cancel();
    expect((await routeOf({ urlPrefix: '/files' }).GET(request('/uploads/song.mp3'))).status).toBe(404);
  });
});

describe('safe serving: only media is inline', () => {
  const EVIL = '<script>alert(document.cookie)</script><svg onload="alert(1)"/>';
  beforeEach(async () => {
    const files = ['evil.html', 'evil.htm', 'evil.svg', 'x.js', 'x.mjs', 'x.pdf', 'x.xml', 'x.xhtml', 'x.txt', 'x.css', 'x.json', 'x.unknownext', 'noext'];
    const media = ['a.mp3', 'a.flac', 'a.wav', 'a.opus', 'a.m4a', 'v.mp4', 'v.mov', 'i.png', 'i.jpg', 'i.jpeg', 'i.gif', 'i.webp', 'i.avif'];
    await writeTree(p.source, Object.fromEntries([...files, ...media].map((f) => [f, EVIL])));
  });

  test.each(['evil.html', 'evil.htm', 'evil.svg', 'x.js', 'x.mjs', 'x.pdf', 'x.xml', 'x.xhtml', 'x.txt', 'x.css', 'x.json', 'x.unknownext', 'noext'])(
    '%s is an attachment in a sandbox, nosniff (GET, HEAD and a 206)',
    async (name) => {
      const route = routeOf();
      for (const res of [
        await route.GET(request(`/uploads/${name}`)),
        await route.HEAD(request(`/uploads/${name}`, {}, 'HEAD')),
        await route.GET(request(`/uploads/${name}`, { range: 'bytes=0-3' })),
      ]) {
        expect([200, 206]).toContain(res.status);
        expect(res.headers.get('content-disposition')).toBe(`attachment; filename=${name}`);
        expect(res.headers.get('content-security-policy')).toBe('sandbox');
        expect(res.headers.get('x-content-type-options')).toBe('nosniff');
        await res.body?.cancel();
      }
    },
  );

  test.each(['a.mp3', 'a.flac', 'a.wav', 'a.opus', 'a.m4a', 'v.mp4', 'v.mov', 'i.png', 'i.jpg', 'i.jpeg', 'i.gif', 'i.webp', 'i.avif'])(
    '%s is inline (no Content-Disposition, no sandbox), nosniff',
    async (name) => {
      const res = await get(`/uploads/${name}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^(audio|video|image)\//);
      expect(res.headers.get('content-disposition')).toBeNull();
      expect(res.headers.get('content-security-policy')).toBeNull();
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      await res.body?.cancel();
    },
  );

  test('the attachment name follows RFC 6266/5987: an ASCII fallback and the UTF-8 name', async () => {
    await writeTree(p.source, { 'Café "曲" 100%.html': EVIL });
    const res = await get(`/uploads/${encodeURIComponent('Café "曲" 100%.html')}`);
    expect(res.headers.get('content-disposition')).toBe(`attachment; filename="Caf? \\"?\\" 100%.html"; filename*=UTF-8''Caf%C3%A9%20%22%E6%9B%B2%22%20100%25.html`);
    await res.body?.cancel();
  });

  test('the type decides, after contentTypes: an .mp3 mapped to text/html is an attachment; .html mapped to audio is inline', async () => {
    const res = await get('/uploads/a.mp3', {}, { contentTypes: { mp3: 'text/html', html: 'audio/mpeg' } });
    expect(res.headers.get('content-disposition')).toBe('attachment; filename=a.mp3');
    await res.body?.cancel();
    const html = await get('/uploads/evil.html', {}, { contentTypes: { html: 'audio/mpeg' } });
    expect(html.headers.get('content-disposition')).toBeNull();
    await html.body?.cancel();
  });

  test('inlineTypes widens what is inline: exact types, type/* patterns, */*', async () => {
    const disposition = async (name: string, inlineTypes: string[]) => {
      const res = await get(`/uploads/${name}`, {}, { inlineTypes });
      await res.body?.cancel();
      return [res.headers.get('content-disposition'), res.headers.get('content-security-policy')];
    };
    expect(await disposition('x.pdf', ['application/pdf'])).toEqual([null, null]);
    expect(await disposition('x.xml', ['application/pdf'])).toEqual(['attachment; filename=x.xml', 'sandbox']);
    expect(await disposition('x.txt', ['TEXT/*'])).toEqual([null, null]);
    expect(await disposition('evil.svg', ['text/*'])).toEqual(['attachment; filename=evil.svg', 'sandbox']);
    expect(await disposition('evil.svg', ['*/*'])).toEqual([null, null]);
    expect(await disposition('noext', ['*/*'])).toEqual([null, null]);
  });

  test('a Content-Security-Policy from `headers` is kept, and the sandbox added to it', async () => {
    const res = await get('/uploads/evil.html', {}, { headers: { 'Content-Security-Policy': "default-src 'self'" } });
    expect(res.headers.get('content-security-policy')).toBe("default-src 'self', sandbox");
    await res.body?.cancel();
  });

  test('X-Content-Type-Options: nosniff on every answer: 200, 206, 304, 400, 403, 404, 412, 416', async () => {
    const route = routeOf();
    const etag = (await route.HEAD(request('/uploads/evil.html', {}, 'HEAD'))).headers.get('etag')!;
    const answers = [
      await route.GET(request('/uploads/evil.html')),
      await route.GET(request('/uploads/evil.html', { range: 'bytes=1-2' })),
      await route.GET(request('/uploads/evil.html', { 'if-none-match': etag })),
      await route.GET(request('/uploads/%00.html')),
      await route.GET(request('/uploads/..%2fsecret.mp3')),
      await route.GET(request('/uploads/missing.html')),
      await route.GET(request('/uploads/evil.html', { 'if-match': '"nope"' })),
      await route.GET(request('/uploads/evil.html', { range: 'bytes=9999-' })),
    ];
    expect(answers.map((r) => r.status)).toEqual([200, 206, 304, 400, 403, 404, 412, 416]);
    for (const res of answers) {
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      await res.body?.cancel();
    }
  });
});

describe('the real path of the folder', () => {
  test('a source that is a symlink re-pointed while the route runs: the new folder is served', async () => {
    const { rename, rm } = await import('node:fs/promises');
    await writeTree(join(p.root, 'disk-a'), { 'a.mp3': 'on disk a' });
    await writeTree(join(p.root, 'disk-b'), { 'b.mp3': 'on disk b' });
    const link = join(p.root, 'current');
    await symlink('disk-a', link);
    const route = createUploadsRoute({ root: p.root, source: link, dest: p.dest });
    expect((await bytes(await route.GET(request('/uploads/a.mp3')))).toString()).toBe('on disk a');
    await symlink('disk-b', `${link}.new`);
    await rename(`${link}.new`, link);
    await rm(join(p.root, 'disk-a'), { recursive: true });
    const b = await route.GET(request('/uploads/b.mp3'));
    expect(b.status).toBe(200);
    expect((await bytes(b)).toString()).toBe('on disk b');
    expect((await route.GET(request('/uploads/a.mp3'))).status).toBe(404);
  });
});

describe('FIFOs and other non-regular files', () => {
  /**
   * Opens each FIFO for read and write (never blocks on Linux), which frees any reader still stuck
   * in open(). Synchronously: stuck opens hold libuv's threads, so an async open would queue behind them.
   */
  const fifos: string[] = [];
  afterEach(() => {
    for (const f of fifos.splice(0)) {
      try {
        closeSync(openSync(f, 'r+'));
      } catch {
        // gone with the temp folder
      }
    }
  });
  const mkfifo = async (path: string) => {
    const r = await run('mkfifo', [path]);
    expect(r.code).toBe(0);
    fifos.push(path);
  };
  /** The answer, or a rejection if none comes within 5 s (a blocking open never answers). */
  const within = <T>(promise: Promise<T>) =>
    Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer within 5 s: the open blocked')), 5000).unref())]);

  test('a FIFO in the source (top level and in a folder) or in the mirror answers 404 at once; the route keeps serving', async () => {
    await mkdir(join(p.source, 'albums'), { recursive: true });
    await mkdir(p.dest, { recursive: true });
    await mkfifo(join(p.source, 'pipe.mp3'));
    await mkfifo(join(p.source, 'albums', 'pipe.mp3'));
    await mkfifo(join(p.dest, 'only-in-dest.mp3'));
    const route = routeOf();
    // More than libuv's 4 threads: blocking opens would hold every one of them.
    const answers = await within(
      Promise.all(
        Array.from({ length: 3 }, () => ['/uploads/pipe.mp3', '/uploads/albums/pipe.mp3', '/uploads/only-in-dest.mp3'])
          .flat()
          .map((path) => route.GET(request(path))),
      ),
    );
    expect(answers.map((r) => r.status)).toEqual(Array(9).fill(404));
    const song = await within(route.GET(request('/uploads/song.mp3')));
    expect(song.status).toBe(200);
    expect((await bytes(song)).equals(SONG)).toBe(true);
  });

  test('a symlink inside the source to a FIFO answers 404 at once', async () => {
    await mkfifo(join(p.source, 'real-pipe'));
    await symlink('real-pipe', join(p.source, 'linked.mp3'));
    const res = await within(routeOf().GET(request('/uploads/linked.mp3')));
    expect(res.status).toBe(404);
  });
});

describe('options', () => {
  test('cacheControl, contentTypes and headers', async () => {
    const res = await get('/uploads/song.mp3', {}, { cacheControl: 'public, max-age=31536000, immutable', contentTypes: { '.MP3': 'audio/x-test' }, headers: { 'X-Frame-Options': 'DENY' } });
    expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable, no-transform');
    expect(res.headers.get('content-type')).toBe('audio/x-test');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    await res.body?.cancel();
    const none = await get('/uploads/song.mp3', {}, { cacheControl: false });
    expect(none.headers.get('cache-control')).toBe('no-transform');
    await none.body?.cancel();
  });

  test.each<[string, object]>([
    ['urlPrefix', { urlPrefix: 'uploads' }],
    ['cacheControl', { cacheControl: 'a\r\nb' }],
    ['fallbackToDest', { fallbackToDest: 'yes' }],
    ['headers', { headers: { a: 1 } }],
    ['inlineTypes', { inlineTypes: 'application/pdf' }],
    ['inlineTypes', { inlineTypes: ['pdf'] }],
    ['inlineTypes', { inlineTypes: ['application/pdf', 3] }],
    ['inlineTypes', { inlineTypes: ['text/html; charset=utf-8'] }],
  ])('a bad %s throws ERR_CONFIG at once', (name, options) => {
    let error: unknown;
    try {
      createUploadsRoute(options as never);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(UploadSyncError);
    expect(error).toBeInstanceOf(NextUploadSyncError);
    expect((error as UploadSyncError).code).toBe('ERR_CONFIG');
    expect((error as Error).message).toContain(`\`${name}\``);
  });

  test('a bad configuration found at the first request is a 500, not a crash', async () => {
    const route = createUploadsRoute({ root: p.root, source: p.source, dest: p.source });
    expect((await route.GET(request('/uploads/song.mp3'))).status).toBe(500);
  });
});

describe('streaming', () => {
  test('the body is read only as fast as it is consumed (backpressure)', async () => {
    let reads = 0;
    let closed = 0;
    const fake = {
      read: async (buffer: Uint8Array, offset: number, length: number) => {
        reads++;
        buffer.fill(1, offset, offset + length);
        return { bytesRead: length, buffer };
      },
      close: async () => {
        closed++;
      },
    };
    const stream = fileBody(fake as never, 0, 200 * 1024 * 1024 - 1);
    const reader = stream.getReader();
    await reader.read();
    // Give the stream every chance to read ahead: it must not.
    for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
    expect(reads).toBeLessThanOrEqual(2);
    await reader.cancel();
    expect(closed).toBe(1);
  });

  test('a 200 MB file streams with flat memory', async () => {
    const big = join(p.source, 'big.wav');
    await writeFile(big, '');
    await truncate(big, 200 * 1024 * 1024); // sparse: no disk used
    const before = process.memoryUsage();
    const res = await get('/uploads/big.wav');
    expect(res.headers.get('content-length')).toBe(String(200 * 1024 * 1024));
    const reader = res.body!.getReader();
    let total = 0;
    let peak = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total % (8 * 1024 * 1024) === 0) {
        const now = process.memoryUsage();
        peak = Math.max(peak, now.rss - before.rss, now.arrayBuffers - before.arrayBuffers);
      }
    }
    expect(total).toBe(200 * 1024 * 1024);
    expect(peak).toBeLessThan(100 * 1024 * 1024);
  });

  test('a file that shrinks while it is sent cuts the response instead of padding it', async () => {
    const f = join(p.source, 'shrinking.mp3');
    await writeFile(f, randomBytes(512 * 1024));
    const res = await get('/uploads/shrinking.mp3');
    const reader = res.body!.getReader();
    await reader.read();
    await truncate(f, 0);
    await expect((async () => {
      for (;;) if ((await reader.read()).done) return;
    })()).rejects.toThrow(/File ended/);
  });

  test('the file is closed after a full read, a HEAD, a 304 and a cancel', async () => {
    // Each open handle of the file would keep it in /proc/self/fd; count them before and after.
    const fds = async () => {
      const { readdir, readlink } = await import('node:fs/promises');
      const links = await Promise.all((await readdir('/proc/self/fd')).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
      return links.filter((l) => l.endsWith('song.mp3')).length;
    };
    if (!existsSync('/proc/self/fd')) return;
    const route = routeOf();
    await bytes(await route.GET(request('/uploads/song.mp3')));
    await route.HEAD(request('/uploads/song.mp3', {}, 'HEAD'));
    const etag = (await route.HEAD(request('/uploads/song.mp3', {}, 'HEAD'))).headers.get('etag')!;
    await route.GET(request('/uploads/song.mp3', { 'if-none-match': etag }));
    await (await route.GET(request('/uploads/song.mp3'))).body!.cancel();
    await route.GET(request('/uploads/song.mp3', { range: 'bytes=5000-' }));
    expect(await fds()).toBe(0);
  });
});

describe('package entries (built dist/)', () => {
  // A resolve hook that fails any import of chokidar: importing an entry must not need it.
  const hook = `data:text/javascript,${encodeURIComponent(
    'import { register } from "node:module"; register("data:text/javascript," + encodeURIComponent("export async function resolve(s, c, n) { if (s === \\"chokidar\\" || s.startsWith(\\"chokidar/\\")) throw new Error(\\"chokidar was loaded\\"); return n(s, c); }"));',
  )}`;

  test.each(['dist/next.js', 'dist/index.js'])('importing %s (ESM) does not load chokidar', async (entry) => {
    const code = `const m = await import(${JSON.stringify(join(ROOT, entry))}); console.log(Object.keys(m).sort().join(','));`;
    const r = await run(process.execPath, ['--import', hook, '--input-type=module', '-e', code], { cwd: ROOT });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    if (entry === 'dist/next.js') expect(r.stdout.trim()).toBe('UploadSyncError,createUploadsRoute,saveMultipart,saveUpload');
    // The hook does catch chokidar (so the check above means something).
    const control = await run(process.execPath, ['--import', hook, '--input-type=module', '-e', 'await import("chokidar")'], { cwd: ROOT });
    expect(control.code).not.toBe(0);
    expect(control.stderr).toContain('chokidar was loaded');
  });

  test.each(['dist/next.cjs', 'dist/index.cjs'])('requiring %s (CJS) does not load chokidar', async (entry) => {
    const code = `const m = require(${JSON.stringify(join(ROOT, entry))}); const loaded = Object.keys(require.cache).filter((k) => k.includes('chokidar')); console.log(JSON.stringify({ keys: Object.keys(m).length, loaded }));`;
    const r = await run(process.execPath, ['-e', code], { cwd: ROOT });
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { keys: number; loaded: string[] };
    expect(out.loaded).toEqual([]);
    expect(out.keys).toBeGreaterThan(0);
  });

  test('UploadSyncError from either entry, ESM or CJS, is one class to instanceof (ESM entries share it)', async () => {
    const code = `
      const { UploadSyncError: A } = await import(${JSON.stringify(join(ROOT, 'dist/index.js'))});
      const { UploadSyncError: B, saveUpload } = await import(${JSON.stringify(join(ROOT, 'dist/next.js'))});
      const { createRequire } = await import('node:module');
      const { UploadSyncError: C } = createRequire(import.meta.url)(${JSON.stringify(join(ROOT, 'dist/next.cjs'))});
      const err = await saveUpload(new Uint8Array(1), { name: '../x', sync: false }).catch((e) => e);
      console.log(JSON.stringify([A === B, err instanceof A, err instanceof B, err instanceof C, err.code, new Error('x') instanceof A]));`;
    const r = await run(process.execPath, ['--input-type=module', '-e', code], { cwd: p.root });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual([true, true, true, true, 'ERR_INVALID_NAME', false]);
  });
});

