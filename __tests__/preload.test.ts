/**
 * `upload-sync/preload` (dist/preload.cjs) without Next: a plain node:http server started with
 * `node --require dist/preload.cjs` in `<project>/.next/standalone`, whose own listener answers
 * `listener: <method> <url>`. What reaches the listener and what the preload answers, the
 * environment switches, lazy loading. The same preload in a real standalone build: preload.e2e.test.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { ROOT, cleanEnv, run, tempProject, waitFor, writeTree } from './helpers.js';
import { get } from './next-helpers.js';

const PRELOAD = join(ROOT, 'dist', 'preload.cjs');
const SERVER = `
const http = require('node:http');
const server = http.createServer((req, res) => {
  if (req.url === '/loaded') return res.end(String(Object.keys(require.cache).some((k) => k.endsWith('next.cjs'))));
  res.setHeader('content-type', 'text/plain');
  res.end('listener: ' + req.method + ' ' + req.url);
});
server.listen(0, '127.0.0.1', () => console.log('port ' + server.address().port));
`;

const p = tempProject('upload-sync-preload-');
const standalone = join(p.root, '.next', 'standalone');
const children = new Set<ChildProcess>();

async function start(env: Record<string, string> = {}): Promise<{ base: string; output: () => string }> {
  const child = spawn(process.execPath, ['--require', PRELOAD, 'server.cjs'], { cwd: standalone, env: cleanEnv({ DEBUG: 'upload-sync:preload', ...env }), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(() => /port \d+/.test(out) || child.exitCode !== null, { timeoutMs: 10_000, message: 'the server to listen' });
  if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${out}`);
  return { base: `http://127.0.0.1:${/port (\d+)/.exec(out)![1]}`, output: () => out };
}

const text = async (url: string, method = 'GET', headers: Record<string, string> = {}) => {
  const a = await get(url, headers, method);
  return { status: a.status, body: a.body.toString(), headers: a.headers };
};

beforeAll(async () => {
  await writeTree(p.source, { 'a.mp3': 'A'.repeat(100_000), 'sub/b.mp3': 'bee', '.hidden.mp3': 'h' });
  await writeTree(p.dest, { 'mirror-only.mp3': 'from the mirror' });
  await writeFile(join(standalone, 'server.cjs'), SERVER);
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await p.cleanup();
});

describe('upload-sync/preload in a node:http server', () => {
  test('answers GET/HEAD under /uploads/ with the route, loaded at the first one; everything else reaches the listener', async () => {
    const { base, output } = await start();
    expect(output()).toMatch(/upload-sync:preload INFO serving GET\/HEAD \/uploads\/\*/);
    expect((await text(`${base}/loaded`)).body).toBe('false');

    const whole = await text(`${base}/uploads/a.mp3`);
    expect(whole).toMatchObject({ status: 200, headers: { 'content-type': 'audio/mpeg', 'content-length': '100000', 'x-content-type-options': 'nosniff' } });
    expect(whole.body).toBe('A'.repeat(100_000));
    expect((await text(`${base}/loaded`)).body).toBe('true');
    const head = await text(`${base}/uploads/a.mp3`, 'HEAD');
    expect(head).toMatchObject({ status: 200, body: '', headers: { 'content-length': '100000' } });
    expect(await text(`${base}/uploads/sub/b.mp3`, 'GET', { Range: 'bytes=1-2' })).toMatchObject({ status: 206, body: 'ee' });
    expect(await text(`${base}/uploads/mirror-only.mp3`)).toMatchObject({ status: 200, body: 'from the mirror' });
    expect((await text(`${base}/uploads/.hidden.mp3`)).status).toBe(404);
    expect((await text(`${base}/uploads/missing.mp3?x=1`)).status).toBe(404);

    // The listener's: other methods, other paths, the prefix itself, what resolves out of it.
    for (const [method, path] of [
      ['POST', '/uploads/a.mp3'],
      ['OPTIONS', '/uploads/a.mp3'],
      ['GET', '/'],
      ['GET', '/uploads'],
      ['GET', '/uploads/'],
      ['GET', '/uploadsx/a.mp3'],
      ['GET', '/uploads/../a.mp3'],
      ['GET', '/uploads/%2e%2e/a.mp3'],
      ['GET', '//uploads/a.mp3'],
    ]) {
      expect({ path, ...(await text(`${base}${path}`, method)) }).toMatchObject({ path, status: 200, body: `listener: ${method} ${path}` });
    }
  });

  test('a client that goes away mid-body: the server stays up and answers', async () => {
    await writeFile(join(p.source, 'big.mp3'), Buffer.alloc(16 * 1024 * 1024, 1));
    const { base } = await start();
    const { port } = new URL(base);
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/uploads/big.mp3', agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
      req.end();
    });
    expect(await text(`${base}/uploads/sub/b.mp3`)).toMatchObject({ status: 200, body: 'bee' });
    expect((await text(`${base}/other`)).body).toBe('listener: GET /other');
  });

  test('UPLOAD_SYNC_URL_PREFIX moves it; UPLOAD_SYNC_PRELOAD=off turns it off; a bad value of either stops the start', async () => {
    const moved = await start({ UPLOAD_SYNC_URL_PREFIX: '/media/' });
    expect(await text(`${moved.base}/media/sub/b.mp3`)).toMatchObject({ status: 200, body: 'bee' });
    expect((await text(`${moved.base}/uploads/sub/b.mp3`)).body).toBe('listener: GET /uploads/sub/b.mp3');

    const off = await start({ UPLOAD_SYNC_PRELOAD: 'off' });
    expect(off.output()).toMatch(/upload-sync:preload INFO off \(UPLOAD_SYNC_PRELOAD=off\)/);
    expect((await text(`${off.base}/uploads/sub/b.mp3`)).body).toBe('listener: GET /uploads/sub/b.mp3');
    expect((await text(`${off.base}/loaded`)).body).toBe('false');

    const bad = await run(process.execPath, ['--require', PRELOAD, '-e', '0'], { cwd: standalone, env: cleanEnv({ UPLOAD_SYNC_URL_PREFIX: 'uploads' }) });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/Invalid UPLOAD_SYNC_URL_PREFIX "uploads"/);
    const typo = await run(process.execPath, ['--require', PRELOAD, '-e', '0'], { cwd: standalone, env: cleanEnv({ UPLOAD_SYNC_PRELOAD: 'of' }) });
    expect(typo.code).not.toBe(0);
    expect(typo.stderr).toMatch(/UPLOAD_SYNC_PRELOAD/);
  });
});
