// A large tree is compared by two threads (src/threads.ts, src/diff-worker.ts): the built package
// must reach exactly the result of the one-thread comparison the unit tests run from source.
import { cpSync } from 'node:fs';
import { rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, expect, test } from '@jest/globals';
import { syncUploads, type SyncResult } from '../src/index.js';
import { DIST_ESM, cleanEnv, readTree, run, tempFiles, tempProject, writeTree } from './helpers.js';

const projects: Array<ReturnType<typeof tempProject>> = [];
afterAll(async () => {
  await Promise.all(projects.map((p) => p.cleanup()));
});

test('the built package compares a large tree in a worker thread and gets the one-thread result', async () => {
  const a = tempProject('upload-sync-worker-');
  projects.push(a);
  const files: Record<string, string> = {};
  for (let f = 0; f < 40; f++) {
    for (let i = 0; i < 5; i++) files[`album-${f}/t${i}.mp3`] = `album ${f} track ${i}`;
    if (f % 7 === 0) files[`album-${f}/disc 2/x.mp3`] = `nested ${f}`;
  }
  await writeTree(a.source, files);
  const lockDir = join(a.root, 'locks');
  expect((await syncUploads({ source: a.source, dest: a.dest, force: true, lockDir })).status).toBe('ok');

  // Every kind of difference, spread over the folders both threads take.
  for (let f = 0; f < 40; f += 3) await writeFile(join(a.source, `album-${f}/t1.mp3`), `changed ${f}, now longer`);
  for (let f = 1; f < 40; f += 5) await unlink(join(a.source, `album-${f}/t2.mp3`));
  for (const f of [4, 17, 33]) await rm(join(a.source, `album-${f}`), { recursive: true });
  await writeTree(a.source, { 'album-new/a.mp3': 'new', 'album-new2/deep/b.mp3': 'new too', 'album-5/.hidden.mp3': 'dot' });
  await writeTree(a.dest, { 'album-9/.upload-sync-zzzzzz-0123456789ab.tmp': 'a dead sync\'s temp', 'album-30/orphan.mp3': 'orphan' });
  await symlink('/etc/hostname', join(a.source, 'album-11', 'outside.mp3'));
  const old = new Date('2024-01-01T00:00:00Z');
  await utimes(join(a.source, 'album-20/t3.mp3'), old, old); // same size, other mtime: updated

  const b = tempProject('upload-sync-worker-');
  projects.push(b);
  cpSync(a.root, b.root, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true, force: true });

  // One thread: this process runs src/, where no built worker exists.
  const one = await syncUploads({ source: a.source, dest: a.dest, force: true, delete: true, lockDir });
  // Two threads: the built package in a child, with the worker's debug line as proof it ran.
  const code = `
    import { syncUploads } from ${JSON.stringify(DIST_ESM)};
    const r = await syncUploads({ source: ${JSON.stringify(b.source)}, dest: ${JSON.stringify(b.dest)}, force: true, delete: true, lockDir: ${JSON.stringify(join(b.root, 'locks'))} });
    process.stdout.write(JSON.stringify(r));`;
  const child = await run(process.execPath, ['--input-type=module', '-e', code], { env: cleanEnv({ DEBUG: 'upload-sync:diff' }) });
  expect(child.stderr).toMatch(/upload-sync:diff worker compared \d+ folders/);
  const two = JSON.parse(child.stdout) as SyncResult;

  const comparable = (r: SyncResult) => ({ ...r, durationMs: 0 });
  expect(comparable(two)).toEqual(comparable(one));
  expect(one.status).toBe('ok');
  expect(one.updated.length).toBe(14); // 13 rewritten (album-33 is gone) + 1 touched
  expect(one.deleted).toContain('album-30/orphan.mp3');
  for (const p of [a, b]) {
    expect(await readTree(p.dest)).toEqual(await readTree(p.source).then((t) => {
      delete t['album-5/.hidden.mp3'];
      return t;
    }));
    expect(await tempFiles(p.dest)).toEqual([]);
  }
});
