/**
 * Files changing under the sync: a source file rewritten, truncated or growing while it is copied
 * is never published torn (the engine checks size and mtime after the copy, copies again, else
 * reports ERR_CHANGED), and a file deleted during a run is not an error.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import { open, rm, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { syncUploads, type SyncResult } from '../src/index.js';
import { DIST_ESM, cleanEnv, readTree, tempFiles, tempProject, waitFor, writeTree } from './helpers.js';
import { killChild, startNode, type Child } from './reliability-helpers.js';

for (const key of Object.keys(process.env)) {
  if (/UPLOAD_SYNC/.test(key)) delete process.env[key];
}

const MB = 1024 * 1024;
const projects: Array<ReturnType<typeof tempProject>> = [];
const children: Child[] = [];
function project(): ReturnType<typeof tempProject> {
  const p = tempProject('upload-sync-change-');
  projects.push(p);
  return p;
}
afterEach(async () => {
  for (const c of children.splice(0)) await killChild(c);
  await Promise.all(projects.splice(0).map((p) => p.cleanup()));
});

/** Resolves once a temp file of at least `minBytes` (a big copy in flight) is in `dir`, checking once per event-loop turn. */
async function copyStarted(dir: string, done: () => boolean, minBytes = MB): Promise<boolean> {
  const deadline = Date.now() + 20_000;
  while (!done() && Date.now() < deadline) {
    for (const t of await tempFiles(dir)) {
      if (((await stat(t).catch(() => null))?.size ?? 0) >= minBytes) return true;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  return false;
}

/** A sync of the whole tree in this process, with a flag set when it has ended. */
function startSync(p: ReturnType<typeof tempProject>, extra: Parameters<typeof syncUploads>[0] = {}) {
  const state = { done: false };
  const promise = syncUploads({ source: p.source, dest: p.dest, force: true, lockDir: join(p.root, 'locks'), ...extra }).finally(() => {
    state.done = true;
  });
  return { promise, done: () => state.done };
}

describe('a source file that changes while it is copied', () => {
  test('rewritten in place mid-copy: copied again, published whole with the new bytes', async () => {
    const p = project();
    const src = join(p.source, 'big.wav');
    await writeTree(p.source, { 'big.wav': Buffer.alloc(200 * MB, 'v1-') });
    const run = startSync(p);
    expect(await copyStarted(p.dest, run.done)).toBe(true);
    // Same size, new bytes in the middle, new mtime: a copy made across it would be a mix.
    const fh = await open(src, 'r+');
    await fh.write(Buffer.alloc(MB, 'v2-'), 0, MB, 100 * MB);
    await fh.close();
    const result = await run.promise;

    expect(result).toMatchObject({ status: 'ok', copied: ['big.wav'], errors: [] });
    const [s, d] = await Promise.all([stat(src), stat(join(p.dest, 'big.wav'))]);
    expect(d.size).toBe(s.size);
    expect(Math.abs(d.mtimeMs - s.mtimeMs)).toBeLessThanOrEqual(1);
    expect(await readTree(p.dest)).toEqual(await readTree(p.source));
    expect(await tempFiles(p.dest)).toEqual([]);
  });

  /**
   * In a child process, with a deadline: `fs.copyFile` (libuv) copies the size the source had when
   * it was opened and calls sendfile/copy_file_range until that many bytes are done; a source that
   * shrank under it returns 0 bytes forever, and the run never ends.
   */
  test.each([
    ['truncated to 1000 bytes', (src: string) => truncate(src, 1000), 1000],
    ['rewritten with shorter content', (src: string) => writeFile(src, Buffer.alloc(5000, 'short-')), 5000],
  ])('%s mid-copy: the run ends, and dest never holds a torn file', async (_what, shrink, newSize) => {
    const p = project();
    const src = join(p.source, 'big.wav');
    await writeTree(p.source, { 'big.wav': Buffer.alloc(200 * MB, 'v1-'), 'small.mp3': 'small' });
    const script = join(p.root, 'sync-child.mjs');
    await writeFile(
      script,
      `import { syncUploads } from ${JSON.stringify(pathToFileURL(DIST_ESM).href)};
       const result = await syncUploads(JSON.parse(process.argv[2]));
       process.stdout.write('RESULT ' + JSON.stringify(result) + '\\n');`,
    );
    const child = startNode([script, JSON.stringify({ source: p.source, dest: p.dest, force: true, lockDir: join(p.root, 'locks') })], { env: cleanEnv() });
    children.push(child);
    const exited = () => child.proc.exitCode !== null || child.proc.signalCode !== null;
    expect(await copyStarted(p.dest, exited)).toBe(true);
    await shrink(src);

    // Whatever the final name shows meanwhile is a whole version: the old 200 MB or the new one.
    const sizes = new Set<number>();
    let ended = true;
    await waitFor(
      async () => {
        const st = await stat(join(p.dest, 'big.wav')).catch(() => null);
        if (st) sizes.add(st.size);
        return exited();
      },
      { timeoutMs: 10_000, intervalMs: 5 },
    ).catch(() => (ended = false));
    if (!ended) await killChild(child); // it spins in copyFile: SIGKILL is the only way out
    expect({ ended, stderr: child.stderr() }).toEqual({ ended: true, stderr: '' });

    const line = child.stdout().split('\n').find((l) => l.startsWith('RESULT '))!;
    const result = JSON.parse(line.slice(7)) as SyncResult;
    expect([...sizes].filter((n) => n !== newSize && n !== 200 * MB)).toEqual([]);
    expect(await tempFiles(p.dest)).toEqual([]);
    if (result.status === 'ok') {
      // Copied again after the change: dest has the new, short file.
      expect(result.errors).toEqual([]);
      expect(await readTree(p.dest)).toEqual(await readTree(p.source));
    } else {
      // Or reported: ERR_CHANGED, and nothing torn under the final name.
      expect(result.errors.map((e) => [e.path, e.code])).toEqual([['big.wav', 'ERR_CHANGED']]);
      expect((await readTree(p.dest))['small.mp3']).toBe('small');
    }
  }, 30_000);

  test('growing through every attempt: ERR_CHANGED after the retries, the mirrored version kept, no temp file', async () => {
    const p = project();
    const src = join(p.source, 'live.wav');
    await writeTree(p.source, { 'live.wav': Buffer.alloc(128 * MB, 'v0-') });
    const first = await syncUploads({ source: p.source, dest: p.dest, force: true, lockDir: join(p.root, 'locks') });
    expect(first.copied).toEqual(['live.wav']);
    const mirrored = await readTree(p.dest);

    // Another process appends to it each time a copy of it begins (a new temp file in dest): every attempt is overtaken.
    await writeFile(src, Buffer.alloc(128 * MB, 'v1-'));
    const writer = startNode(
      ['-e', `const fs = require('fs'); const seen = new Set(); let appends = 0; process.stdout.write('writing\\n');
              process.on('SIGTERM', () => { process.stdout.write('appends ' + appends + '\\n'); process.exit(0); });
              const poll = () => {
                for (const name of fs.readdirSync(${JSON.stringify(p.dest)})) {
                  if (name.startsWith('.upload-sync-') && !seen.has(name)) { seen.add(name); fs.appendFileSync(${JSON.stringify(src)}, 'more'); appends++; }
                }
                setImmediate(poll);
              };
              poll();`],
      { env: cleanEnv() },
    );
    children.push(writer);
    await waitFor(() => writer.stdout().includes('writing'), { message: 'the writer to start' });
    const result = await syncUploads({ source: p.source, dest: p.dest, force: true, lockDir: join(p.root, 'locks'), files: ['live.wav'] });
    writer.proc.kill('SIGTERM');
    await writer.exited;

    expect(writer.stdout()).toContain('appends 3'); // one append during each of the three attempts
    expect(result.status).toBe('failed');
    expect(result.errors.map((e) => [e.path, e.code])).toEqual([['live.wav', 'ERR_CHANGED']]);
    expect(result.updated).toEqual([]);
    expect(await readTree(p.dest)).toEqual(mirrored); // the last whole version stays
    expect(await tempFiles(p.dest)).toEqual([]);

    // Once it is stable, the next run publishes it.
    const after = await syncUploads({ source: p.source, dest: p.dest, force: true, lockDir: join(p.root, 'locks') });
    expect(after).toMatchObject({ status: 'ok', updated: ['live.wav'] });
    expect(await readTree(p.dest)).toEqual(await readTree(p.source));
  });
});

describe('a source file deleted during a run', () => {
  test('deleted before its copy began: not an error, the rest synced', async () => {
    const p = project();
    const files: Record<string, Buffer | string> = {};
    // The walk lists the top folder first: four big files keep the four copy workers busy while the rest waits.
    for (let i = 0; i < 4; i++) files[`big-${i}.wav`] = Buffer.alloc(40 * MB, `big-${i}-`);
    for (let i = 0; i < 50; i++) files[`later/song-${i}.mp3`] = `song ${i}`;
    await writeTree(p.source, files);
    const run = startSync(p);
    expect(await copyStarted(p.dest, run.done)).toBe(true);
    await rm(join(p.source, 'later'), { recursive: true }); // listed, not copied yet
    const result = await run.promise;

    expect(result.errors.map((e) => `${e.path}: ${e.code}`)).toEqual([]);
    expect(result.status).toBe('ok');
    expect(result.copied).toEqual(['big-0.wav', 'big-1.wav', 'big-2.wav', 'big-3.wav']);
    expect(await readTree(p.dest)).toEqual(await readTree(p.source));
    expect(await tempFiles(p.dest)).toEqual([]);
  });

  test('deleted while it is being copied: not an error, no temp file, nothing torn', async () => {
    const p = project();
    await writeTree(p.source, { 'going.wav': Buffer.alloc(200 * MB, 'going-'), 'stays.mp3': 'stays' });
    const run = startSync(p, { concurrency: 1 });
    expect(await copyStarted(p.dest, run.done)).toBe(true);
    await unlink(join(p.source, 'going.wav'));
    const result = await run.promise;

    expect(result.errors.map((e) => `${e.path}: ${e.code}`)).toEqual([]);
    expect(result.status).toBe('ok');
    expect(result.copied).toContain('stays.mp3');
    expect(await tempFiles(p.dest)).toEqual([]);
    const dest = await readTree(p.dest);
    expect(dest['stays.mp3']).toBe('stays');
    // Its copy, if it was published at all, is whole.
    if (dest['going.wav'] !== undefined) expect(Buffer.from(dest['going.wav'], 'latin1').equals(Buffer.alloc(200 * MB, 'going-'))).toBe(true);
  });
});
