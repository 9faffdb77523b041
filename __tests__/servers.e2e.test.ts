/**
 * Two servers, one bucket (issue 12, point 6): examples/next-app built standalone from the packed
 * library with the AWS SDK beside it, deployed twice (two copies of `.next/standalone`, each with its
 * own `public/uploads` and mirror, as on two machines), on two ports, both with `UPLOAD_SYNC_STORE`
 * naming one bucket of the real Ceph gateway. An upload through server A's page plays at once on
 * server B in Chromium, seeking included, although B's disk never held it; the other way round too.
 * Needs what page.e2e.test.ts needs, and the S3 gateway (__tests__/s3-helpers.ts); `SKIP_NEXT_E2E=1`
 * skips it, as the other Next tests.
 */
import { cp, mkdir, mkdtemp, readdir, readFile, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { chromium, type Browser, type Page, type Response } from 'playwright-core';
import { BYTES_PER_SECOND, CHROMIUM, CHROMIUM_FLAGS, wav } from './browser-helpers.js';
import { cleanEnv, ROOT } from './helpers.js';
import { MINUTES, buildExample, commands, get, servers, startServer, stopServer, type Started } from './next-helpers.js';
import { bucketName, s3TestEnv, type S3Env } from './s3-helpers.js';

// What the callbacks given to page.evaluate use of the page (they run in Chromium; this project's
// tsconfig has no DOM lib, and adding it would let src/ use browser globals unnoticed).
interface PageAudio { src: string; id: string; currentTime: number; readyState: number; duration: number; muted: boolean; play(): Promise<void> }
interface PageDocument {
  createElement(tag: 'audio'): PageAudio;
  body: { appendChild(node: PageAudio): void };
  querySelector(selector: '#remote'): PageAudio | null;
  querySelector(selector: string): { textContent: string | null } | null;
}
declare const document: PageDocument;

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const gw = process.env.SKIP_NEXT_E2E === '1' ? { skip: 'SKIP_NEXT_E2E=1' } : await s3TestEnv();
if ('skip' in gw) process.stderr.write(`servers.e2e.test.ts skipped: ${gw.skip}\n`);
const d = 'env' in gw ? describe : describe.skip;

const SECONDS = 30;
const TONE = wav(SECONDS);
const PREFIX = 'music/uploads';

/** The versions of the AWS SDK this repository tests with (its devDependencies): the app installs the same. */
async function sdkDependencies(): Promise<Record<string, string>> {
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
  const names = ['@aws-sdk/client-s3', '@aws-sdk/s3-request-presigner'];
  return Object.fromEntries(names.map((n) => [n, pkg.devDependencies[n]!]));
}

d('two servers sharing one bucket', () => {
  let s3: S3Env;
  let work = '';
  let admin: S3Client;
  let browser: Browser | undefined;
  const bucket = bucketName('servers');
  const host: Record<'a' | 'b', { root: string; server?: Started }> = { a: { root: '' }, b: { root: '' } };
  const env = (name: string) =>
    cleanEnv({
      ...s3,
      NEXT_TELEMETRY_DISABLED: '1',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      UPLOAD_SYNC_STORE: `s3://${bucket}/${PREFIX}`,
      UPLOAD_SYNC_LOCK_DIR: join(work, `locks-${name}`),
    });
  const { timings, timed, must } = commands(() => env('build'));

  /** The keys under the store's prefix, relative to it. */
  const objects = async (): Promise<string[]> =>
    ((await admin.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${PREFIX}/` }))).Contents ?? []).map((o) => o.Key!.slice(PREFIX.length + 1)).sort();
  /** Every file under a server's own folders (its uploads folder and its standalone mirror), but .gitkeep. */
  const localFiles = async (name: 'a' | 'b'): Promise<string[]> => {
    const found: string[] = [];
    for (const dir of [join(host[name].root, 'public', 'uploads'), join(host[name].root, '.next', 'standalone', 'public', 'uploads')]) {
      for (const e of await readdir(dir, { recursive: true }).catch(() => [] as string[])) if (!e.endsWith('.gitkeep')) found.push(join(dir, e));
    }
    return found;
  };

  beforeAll(async () => {
    s3 = (gw as { env: S3Env }).env;
    admin = new S3Client({
      endpoint: s3.AWS_ENDPOINT_URL,
      region: s3.AWS_REGION,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.AWS_ACCESS_KEY_ID!, secretAccessKey: s3.AWS_SECRET_ACCESS_KEY! },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    work = await realpath(await mkdtemp(join(tmpdir(), 'upload-sync-servers-')));
    const { standalone } = await buildExample(work, must, await sdkDependencies());
    // Deployed twice, as on two machines: each has the build's standalone folder and its own uploads.
    for (const name of ['a', 'b'] as const) {
      const root = join(work, name);
      host[name].root = root;
      await cp(standalone, join(root, '.next', 'standalone'), { recursive: true, verbatimSymlinks: true });
      await mkdir(join(root, 'public', 'uploads'), { recursive: true });
      host[name].server = await timed(`next start ${name}`, () => startServer(join(root, '.next', 'standalone'), env(name)));
    }
    browser = await timed('chromium start', () => chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS }));
  }, 15 * MINUTES);

  afterAll(async () => {
    await browser?.close();
    for (const child of servers) await stopServer({ child });
    if (admin !== undefined) {
      const keys = ((await admin.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (keys.length > 0) await admin.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys } }));
      await admin.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => undefined);
      admin.destroy();
    }
    if (work !== '') await rm(work, { recursive: true, force: true });
    console.log(`servers e2e timings (ms): ${JSON.stringify(timings)}`);
  }, 2 * MINUTES);

  /** Uploads `name` through the example page of `base`, as a user would; returns the URL the page shows. */
  async function uploadThroughPage(base: string, name: string, bytes: Buffer): Promise<string> {
    const page = await browser!.newPage();
    try {
      await page.goto(`${base}/`);
      await page.setInputFiles('input[type=file]', { name, mimeType: 'audio/wav', buffer: bytes });
      await page.click('button[type=submit]');
      await page.waitForFunction(() => !/^Uploading/.test(document.querySelector('main p[role]')?.textContent ?? ''), null, { timeout: 60_000 });
      expect(await page.locator('main p[role]').textContent()).toBe(`Uploaded ${name}: it plays at once, seeking included.`);
      return (await page.locator('li a').first().getAttribute('href'))!;
    } finally {
      await page.close();
    }
  }

  /** Plays `url` on `base` in Chromium, seeks near the end, and returns the 206 answers the seek got. */
  async function playAndSeek(base: string, url: string): Promise<Response[]> {
    const page: Page = await browser!.newPage();
    const answers: Response[] = [];
    page.on('response', (r) => answers.push(r));
    try {
      await page.goto(`${base}/`);
      await page.evaluate(async (src) => {
        const audio = document.createElement('audio');
        audio.id = 'remote';
        audio.muted = true; // headless Chromium lets a muted element play without a gesture
        audio.src = src;
        document.body.appendChild(audio);
        await audio.play();
      }, url);
      await page.waitForFunction(() => document.querySelector('#remote')!.currentTime > 0.5, null, { timeout: 20_000 });
      expect(await page.evaluate(() => document.querySelector('#remote')!.duration)).toBeCloseTo(SECONDS, 1);
      const mark = answers.length;
      await page.evaluate(() => {
        document.querySelector('#remote')!.currentTime = 27;
      });
      await page.waitForFunction(() => document.querySelector('#remote')!.currentTime > 27.3, null, { timeout: 20_000 });
      return answers.slice(mark).filter((r) => new URL(r.url()).pathname === url && r.status() === 206);
    } finally {
      await page.close();
    }
  }

  test.each([
    ['a', 'b'],
    ['b', 'a'],
  ] as const)('an upload through server %s plays at once on server %s, seeking included, from the bucket', async (from, to) => {
    const before = await objects();
    const url = await uploadThroughPage(host[from].server!.base, `tone-${from}.wav`, TONE);
    expect(url).toMatch(/^\/uploads\/[0-9a-f-]{36}\.wav$/);
    const name = url.slice('/uploads/'.length);
    // In the bucket, under the store's prefix; never on the other server's disk.
    expect(await objects()).toEqual([...before, name].sort());
    expect((await localFiles(to)).filter((f) => f.endsWith(name))).toEqual([]);

    const whole = await get(`${host[to].server!.base}${url}`);
    expect(whole.status).toBe(200);
    expect(whole.body.equals(TONE)).toBe(true);
    expect(whole.headers['content-type']).toBe('audio/wav');

    const ranged = await playAndSeek(host[to].server!.base, url);
    expect(ranged.length).toBeGreaterThan(0);
    const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(ranged[0]!.headers()['content-range'] ?? '');
    expect(range).not.toBeNull();
    expect(Number(range![1])).toBeGreaterThan(20 * BYTES_PER_SECOND);
    expect(Number(range![3])).toBe(TONE.length);
    // Still nothing on the other server's disk: it served the bucket's object.
    expect((await localFiles(to)).filter((f) => f.endsWith(name))).toEqual([]);
  }, 3 * MINUTES);
});
