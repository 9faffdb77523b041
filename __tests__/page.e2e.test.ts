/**
 * The example page as users meet it: examples/next-app built standalone from the packed library,
 * in headless Chromium (Debian's, driven by playwright-core: no browser download), both through
 * nginx running examples/nginx/upload-sync.conf and straight to Next. Upload a generated WAV, see
 * its URL, play it, seek (a 206), and every way an upload can end: cancelled, refused by nginx
 * (HTML 413), refused by the route (JSON), a 500, the app down behind nginx (502), no answer at all.
 * Needs the npm registry (or a warm npm cache), dist/, /usr/bin/chromium and nginx (.ci/run
 * installs both). `SKIP_NEXT_E2E=1` skips it, as the other Next tests.
 */
import { closeSync, ftruncateSync, mkdtempSync, openSync, realpathSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { chromium, type Browser, type Page, type Response } from 'playwright-core';
import { BYTES_PER_SECOND, CHROMIUM, CHROMIUM_FLAGS, wav } from './browser-helpers.js';
import { cleanEnv, tempFiles, waitFor } from './helpers.js';
import { NGINX_CONF, bodyLimitOf, startNginx, type StartedNginx } from './nginx-helpers.js';
import { MINUTES, buildExample, commands, freePort, servers, startServer, stopServer, type Started } from './next-helpers.js';

// What the callbacks given to page.evaluate use of the page (they run in Chromium; this project's
// tsconfig has no DOM lib, and adding it would let src/ use browser globals unnoticed).
interface PageAudio { currentTime: number; readyState: number; duration: number; muted: boolean; play(): Promise<void> }
interface PageDocument {
  querySelector(selector: 'audio'): PageAudio | null;
  querySelector(selector: 'progress'): { value: number; max: number } | null;
  querySelector(selector: 'form'): { requestSubmit(): void } | null;
  querySelector(selector: string): { textContent: string | null } | null;
}
declare const document: PageDocument;

const skip = process.env.SKIP_NEXT_E2E === '1';
let work = '';
let app = '';
let uploads = '';
let next: Started | undefined;
let nginx: StartedNginx | undefined;
let browser: Browser | undefined;
const env = () => cleanEnv({ NEXT_TELEMETRY_DISABLED: '1', UPLOAD_SYNC_LOCK_DIR: join(work, 'locks') });
const { timings, timed, must } = commands(env);

const SECONDS = 30;
const TONE = wav(SECONDS);

beforeAll(async () => {
  if (skip) return;
  work = realpathSync(mkdtempSync(join(tmpdir(), 'upload-sync-page-')));
  ({ app } = await buildExample(work, must));
  uploads = join(app, 'public', 'uploads');
  next = await timed('next start', () => startServer(join(app, '.next', 'standalone'), env()));
  nginx = await timed('nginx start', () => startNginx(join(work, 'nginx'), join(app, 'public'), new URL(next!.base).host));
  browser = await timed('chromium start', () => chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS }));
}, 15 * MINUTES);

afterAll(async () => {
  await browser?.close();
  await nginx?.stop();
  for (const child of servers) await stopServer({ child });
  if (work !== '') await rm(work, { recursive: true, force: true });
  if (!skip) console.log(`page e2e timings (ms): ${JSON.stringify(timings)}`);
}, 2 * MINUTES);

/** The uploads saved so far (not .gitkeep). */
const saved = async () => (await readdir(uploads)).filter((n) => n !== '.gitkeep').sort();

/** A fresh page on `base`, with every POST to the upload route and every answer recorded. */
async function open(base: string): Promise<{ page: Page; posts: string[]; answers: Response[] }> {
  const page = await browser!.newPage();
  const posts: string[] = [];
  const answers: Response[] = [];
  page.on('request', (r) => r.method() === 'POST' && posts.push(r.url()));
  page.on('response', (r) => answers.push(r));
  await page.goto(`${base}/`);
  return { page, posts, answers };
}

const statusText = (page: Page) => page.locator('main p[role]').textContent();

/** Waits until the page no longer says "Uploading…" and returns what it says. */
async function settled(page: Page): Promise<string> {
  await page.waitForFunction(() => !/^Uploading/.test(document.querySelector('main p[role]')?.textContent ?? ''), null, { timeout: 30_000 });
  return (await statusText(page)) ?? '';
}

const bases: [string, () => string][] = [
  ['through nginx', () => nginx!.base],
  ['straight to Next', () => next!.base],
];

(skip ? describe.skip : describe).each(bases)('the example page %s', (via, base) => {
  test('upload a 30 s WAV: its URL shows, it plays, and a seek is answered with a 206', async () => {
    const { page, answers } = await open(base());
    try {
      const before = await saved();
      await page.setInputFiles('input[type=file]', { name: 'tone.wav', mimeType: 'audio/wav', buffer: TONE });
      await page.click('button[type=submit]');
      expect(await settled(page)).toBe('Uploaded tone.wav: it plays at once, seeking included.');
      const url = (await page.locator('li a').first().getAttribute('href'))!;
      expect(url).toMatch(/^\/uploads\/[0-9a-f-]{36}\.wav$/);
      expect(await page.locator('li audio').first().getAttribute('src')).toBe(url);
      expect(await saved()).toEqual([...before, url.slice('/uploads/'.length)].sort());
      expect((await readFile(join(uploads, url.slice('/uploads/'.length)))).equals(TONE)).toBe(true);
      expect(await page.isEnabled('button[type=submit]')).toBe(true);

      // Play (muted: headless Chromium lets a muted element play without a gesture).
      await page.evaluate(async () => {
        const audio = document.querySelector('audio')!;
        audio.muted = true;
        await audio.play();
      });
      await page.waitForFunction(() => document.querySelector('audio')!.currentTime > 0.5, null, { timeout: 20_000 });
      expect(await page.evaluate(() => document.querySelector('audio')!.readyState)).toBeGreaterThanOrEqual(2); // HAVE_CURRENT_DATA
      expect(await page.evaluate(() => document.querySelector('audio')!.duration)).toBeCloseTo(SECONDS, 1);

      // Seek near the end: Chromium asks for the bytes from there, a Range request answered 206.
      const mark = answers.length;
      await page.evaluate(() => {
        document.querySelector('audio')!.currentTime = 27;
      });
      await page.waitForFunction(() => document.querySelector('audio')!.currentTime > 27.3, null, { timeout: 20_000 });
      const ranged = answers.slice(mark).filter((r) => new URL(r.url()).pathname === url && r.status() === 206);
      expect(ranged.length).toBeGreaterThan(0);
      const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(ranged[0]!.headers()['content-range'] ?? '');
      expect(range).not.toBeNull();
      expect(Number(range![1])).toBeGreaterThan(20 * BYTES_PER_SECOND);
      expect(Number(range![3])).toBe(TONE.length);
      const headers = ranged[0]!.headers();
      expect(headers['content-type']).toBe('audio/wav');
      // Through nginx, nginx serves the file from disk itself; straight to Next, the route does.
      if (via === 'through nginx') expect(headers.server).toMatch(/^nginx/);
      else expect(headers.server).toBeUndefined();
    } finally {
      await page.close();
    }
  });

  test('a double click uploads once, and so do two submits in one task', async () => {
    const { page, posts } = await open(base());
    try {
      const before = await saved();
      await page.setInputFiles('input[type=file]', { name: 'twice.wav', mimeType: 'audio/wav', buffer: wav(1) });
      await page.dblclick('button[type=submit]');
      expect(await settled(page)).toBe('Uploaded twice.wav: it plays at once, seeking included.');
      expect(posts).toHaveLength(1);
      expect((await saved()).length).toBe(before.length + 1);

      // Two submits in one task (before React re-renders the disabled button): still one upload.
      await page.setInputFiles('input[type=file]', { name: 'twice.wav', mimeType: 'audio/wav', buffer: wav(1) });
      await page.evaluate(() => {
        const form = document.querySelector('form')!;
        form.requestSubmit();
        form.requestSubmit();
      });
      expect(await settled(page)).toBe('Uploaded twice.wav: it plays at once, seeking included.');
      expect(posts).toHaveLength(2);
      expect((await saved()).length).toBe(before.length + 2);
    } finally {
      await page.close();
    }
  });

  test('progress shows while uploading, the button is disabled, Cancel stops it and nothing is saved', async () => {
    const { page, posts } = await open(base());
    try {
      const before = await saved();
      // A slow link (Chromium's own upload throttling): 5 MB at 1 MB/s.
      const cdp = await page.context().newCDPSession(page);
      await cdp.send('Network.enable');
      await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 1_000_000 });
      await page.setInputFiles('input[type=file]', { name: 'slow.wav', mimeType: 'audio/wav', buffer: TONE.subarray(0, 5_000_000) });
      await page.click('button[type=submit]');
      await page.waitForFunction(() => {
        const p = document.querySelector('progress');
        return p !== null && p.value > 0.1 * p.max;
      });
      expect(await statusText(page)).toMatch(/^Uploading slow\.wav… \d+% \(\d+\.\d MB of 5\.0 MB\)$/);
      const progress = await page.evaluate(() => document.querySelector('progress')!.value / document.querySelector('progress')!.max);
      expect(progress).toBeLessThan(1);
      expect(await page.isDisabled('button[type=submit]')).toBe(true);
      await page.click('text=Cancel');
      expect(await settled(page)).toBe('Upload of slow.wav cancelled.');
      expect(await page.isEnabled('button[type=submit]')).toBe(true);
      expect(await page.locator('progress').count()).toBe(0);

      // The server saw the connection close: through nginx, its log has the POST's end (never a 201).
      if (via === 'through nginx') {
        const log = () => readFile(join(nginx!.prefix, 'access.log'), 'utf8');
        await waitFor(async () => /"POST \/api\/upload HTTP\/1\.1" (?!201)\d{3}[^\n]*\n$/.test(await log()), { message: 'the cancelled POST in the access log' });
      }
      // Then the same file again at full speed: it is saved, once; the cancelled one never is.
      await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
      await page.click('button[type=submit]');
      expect(await settled(page)).toBe('Uploaded slow.wav: it plays at once, seeking included.');
      expect(posts).toHaveLength(2);
      expect((await saved()).length).toBe(before.length + 1);
      expect(await tempFiles(uploads)).toEqual([]);
    } finally {
      await page.close();
    }
  });

  test('a refusal by the route (JSON) shows its message', async () => {
    const { page } = await open(base());
    try {
      await page.setInputFiles('input[type=file]', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not audio') });
      await page.click('button[type=submit]');
      expect(await settled(page)).toMatch(/^Upload refused \(415\): \S/);
      expect(await page.locator('main [role=alert]').count()).toBe(1);
      expect(await page.isEnabled('button[type=submit]')).toBe(true);
    } finally {
      await page.close();
    }
  });

  test.each([
    ['a 500 with an HTML page', { status: 500, contentType: 'text/html', body: '<html><body>Internal Server Error</body></html>' }, 'Upload failed: the server answered 500 Internal Server Error'],
    ['a 500 with no body', { status: 500, body: '' }, 'Upload failed: the server answered 500 Internal Server Error'],
    ['a 201 that is not JSON', { status: 201, contentType: 'text/html', body: '<html>ok</html>' }, "Upload failed: the server answered 201 without the file's URL"],
  ])('%s is shown, not left on "Uploading…"', async (_what, answer, shown) => {
    const { page } = await open(base());
    try {
      await page.route('**/api/upload', (route) => route.fulfill(answer));
      await page.setInputFiles('input[type=file]', { name: 'x.wav', mimeType: 'audio/wav', buffer: wav(1) });
      await page.click('button[type=submit]');
      expect(await settled(page)).toBe(shown);
      expect(await page.isEnabled('button[type=submit]')).toBe(true);
    } finally {
      await page.close();
    }
  });

  test('no answer at all (the connection drops) is shown', async () => {
    const { page } = await open(base());
    try {
      await page.route('**/api/upload', (route) => route.abort('connectionreset'));
      await page.setInputFiles('input[type=file]', { name: 'x.wav', mimeType: 'audio/wav', buffer: wav(1) });
      await page.click('button[type=submit]');
      expect(await settled(page)).toMatch(/^Upload failed: the connection was lost/);
    } finally {
      await page.close();
    }
  });
});

(skip ? describe.skip : describe)('errors only a proxy makes', () => {
  test("a file over nginx's client_max_body_size: the page shows nginx's HTML 413 as an error", async () => {
    const limit = bodyLimitOf(await readFile(NGINX_CONF, 'utf8'));
    const big = join(work, 'big.wav'); // sparse: no disk space used
    const fd = openSync(big, 'w');
    ftruncateSync(fd, limit + 1);
    closeSync(fd);
    const { page, answers } = await open(nginx!.base);
    try {
      const before = await saved();
      await page.setInputFiles('input[type=file]', big);
      await page.click('button[type=submit]');
      expect(await settled(page)).toBe('Upload refused (413): the file is larger than the server accepts');
      const refusal = answers.find((r) => r.url().endsWith('/api/upload'))!;
      expect(refusal.status()).toBe(413);
      expect(refusal.headers()['content-type']).toBe('text/html');
      expect(await page.isEnabled('button[type=submit]')).toBe(true);
      expect(await saved()).toEqual(before);
    } finally {
      await page.close();
    }
  });

  test('the app down behind nginx: its HTML 502 is shown', async () => {
    const down = await startNginx(join(work, 'nginx-down'), join(app, 'public'), `127.0.0.1:${await freePort()}`);
    try {
      // The page itself comes from the running app; only the upload goes to the nginx whose app is down.
      const { page } = await open(next!.base);
      try {
        await page.route('**/api/upload', async (route) => route.fulfill({ response: await route.fetch({ url: `${down.base}/api/upload` }) }));
        await page.setInputFiles('input[type=file]', { name: 'x.wav', mimeType: 'audio/wav', buffer: wav(1) });
        await page.click('button[type=submit]');
        expect(await settled(page)).toBe('Upload failed: the app behind the proxy is not answering (502)');
      } finally {
        await page.close();
      }
    } finally {
      await down.stop();
    }
  });
});
