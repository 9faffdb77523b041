// A large tree is compared by two threads (src/diff.ts shares it, src/threads.ts and
// src/diff-worker.ts are the helper thread): whatever the sharing, the result must be exactly the
// one-thread comparison's. The helper is only used once it has started, so a test that wants it to
// take shares wraps it to accept one at once.
import { cpSync } from 'node:fs';
import { rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { diffDirs, diffTrees, emptyDiff, mergeDiff, type Diff, type DiffHelper, type DiffOptions, type DirItem } from '../src/engine/diff.js';
import { startRunHelper, type WorkerMessage } from '../src/engine/threads.js';
import { syncUploads, type SyncResult } from '../src/index.js';
import { DIST_ESM, cleanEnv, readTree, run, tempFiles, tempProject, waitFor, writeTree } from './helpers.js';
import { eager } from './thread-helpers.js';

const projects: Array<ReturnType<typeof tempProject>> = [];
afterAll(async () => {
  await Promise.all(projects.map((p) => p.cleanup()));
});

const BUILT_WORKER = { esm: join(DIST_ESM, '..', 'diff-worker.js'), cjs: join(DIST_ESM, '..', 'diff-worker.cjs') };

/** 40 albums of 5 tracks (some with a nested disc), mirrored, then every kind of difference. */
async function changedProject(): Promise<ReturnType<typeof tempProject>> {
  const a = tempProject('upload-sync-worker-');
  projects.push(a);
  const files: Record<string, string> = {};
  for (let f = 0; f < 40; f++) {
    for (let i = 0; i < 5; i++) files[`album-${f}/t${i}.mp3`] = `album ${f} track ${i}`;
    if (f % 7 === 0) files[`album-${f}/disc 2/x.mp3`] = `nested ${f}`;
  }
  await writeTree(a.source, files);
  expect((await syncUploads({ source: a.source, dest: a.dest, force: true, lockDir: join(a.root, 'locks') })).status).toBe('ok');
  for (let f = 0; f < 40; f += 3) await writeFile(join(a.source, `album-${f}/t1.mp3`), `changed ${f}, now longer`);
  for (let f = 1; f < 40; f += 5) await unlink(join(a.source, `album-${f}/t2.mp3`));
  for (const f of [4, 17, 33]) await rm(join(a.source, `album-${f}`), { recursive: true });
  await writeTree(a.source, { 'album-new/a.mp3': 'new', 'album-new2/deep/b.mp3': 'new too', 'album-5/.hidden.mp3': 'dot' });
  await writeTree(a.dest, { 'album-9/.upload-sync-zzzzzz-0123456789ab.tmp': 'a dead sync\'s temp', 'album-30/orphan.mp3': 'orphan' });
  await symlink('/etc/hostname', join(a.source, 'album-11', 'outside.mp3'));
  const old = new Date('2024-01-01T00:00:00Z');
  await utimes(join(a.source, 'album-20/t3.mp3'), old, old); // same size, other mtime: updated
  return a;
}

const options = (p: ReturnType<typeof tempProject>, extra: Partial<DiffOptions> = {}): DiffOptions => ({
  extensions: null,
  sourceReal: p.source,
  delete: true,
  dirMode: null,
  fileMode: null,
  ...extra,
});

/** A diff with every list in one order, to compare diffs made in another order. */
function sorted(diff: Diff): Diff {
  const key = (x: unknown) => (typeof x === 'string' ? x : JSON.stringify(x));
  const out = { ...diff };
  for (const k of ['copies', 'deletes', 'modeFixes', 'dirs', 'destOnlyDirs', 'temps', 'young', 'skippedLinks', 'errors'] as const) {
    (out[k] as unknown[]) = [...diff[k]].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  }
  return out;
}

describe('diffTrees with a helper thread', () => {
  let p: ReturnType<typeof tempProject>;
  let one: Diff;
  beforeAll(async () => {
    p = await changedProject();
    one = await diffTrees(p.source, p.dest, '', options(p));
    expect(one.copies.length).toBe(16); // 13 rewritten, 1 touched, 2 new: differences of every kind
    expect(one.deletes).toContain('album-30/orphan.mp3');
    expect(one.temps).toEqual(['album-9/.upload-sync-zzzzzz-0123456789ab.tmp']);
  });

  test.each(Object.entries(BUILT_WORKER))('the built %s worker takes a share: the result is the one-thread result', async (_, script) => {
    let helper: ReturnType<typeof eager> | null = null;
    const opts = options(p);
    const two = await diffTrees(p.source, p.dest, '', {
      ...opts,
      helper: () => {
        const inner = startRunHelper({ source: p.source, dest: p.dest, opts, copy: { strategy: 'copy', fileMode: null } }, pathToFileURL(script));
        expect(inner).not.toBeNull();
        return (helper = eager(inner!));
      },
    });
    helper!.stop(); // the caller owns it
    expect(helper!.compareShares.length).toBe(1);
    expect(helper!.compareShares[0]!.length).toBeGreaterThanOrEqual(6); // a third of a frontier of 16 or more folders
    expect(sorted(two)).toEqual(sorted(one));
  });

  test('a helper that dies in its share hands the share back: the result is still whole', async () => {
    let lost: DirItem[] = [];
    let busy = false;
    let gave = 0;
    let wake = () => {};
    const failing: DiffHelper = {
      get idle() {
        return gave === 0;
      },
      get busy() {
        return busy;
      },
      give(items) {
        gave++;
        busy = true;
        setImmediate(() => {
          busy = false;
          lost = items; // it crashed: nothing of its share counts
          wake();
        });
      },
      collect: () => lost.splice(0),
      changed: () => new Promise<void>((resolve) => (wake = resolve)),
      stop: () => undefined,
    };
    const two = await diffTrees(p.source, p.dest, '', options(p, { helper: () => failing }));
    expect(gave).toBe(1);
    expect(sorted(two)).toEqual(sorted(one));
  });

  test('a small tree (below the frontier to share) starts no helper', async () => {
    const small = tempProject('upload-sync-worker-');
    projects.push(small);
    await writeTree(small.source, { 'a/1.mp3': '1', 'b/2.mp3': '2' });
    let started = 0;
    const diff = await diffTrees(small.source, small.dest, '', options(small, { helper: () => (started++, null) }));
    expect(started).toBe(0);
    expect(diff.copies.map((c) => c.rel).sort()).toEqual(['a/1.mp3', 'b/2.mp3']);
  });

  test.each(Object.entries(BUILT_WORKER))('the built %s worker speaks the protocol: ready, then parts and done per share', async (_, script) => {
    const opts = options(p);
    const worker = new Worker(script, { workerData: { source: p.source, dest: p.dest, opts, copy: { strategy: 'copy', fileMode: null } }, execArgv: [] });
    const inbox: WorkerMessage[] = [];
    const messages: WorkerMessage[] = [];
    let failure: unknown = null;
    worker.on('message', (m: WorkerMessage) => (inbox.push(m), messages.push(m)));
    worker.on('error', (err) => (failure = err));
    const next = async (): Promise<WorkerMessage> => {
      await waitFor(() => inbox.length > 0 || failure !== null, { message: 'a message from the worker' });
      if (failure !== null) throw failure;
      return inbox.shift()!;
    };
    try {
      expect(await next()).toEqual({ type: 'ready' });
      const items: DirItem[] = [{ rel: '', inSrc: true, inDst: true }];
      worker.postMessage({ type: 'compare', items });
      const got = emptyDiff();
      for (let m = await next(); m.type !== 'done'; m = await next()) {
        expect(m.type).toBe('part');
        if (m.type === 'part') mergeDiff(got, m.diff);
      }
      const here = emptyDiff();
      await diffDirs(p.source, p.dest, [{ rel: '', inSrc: true, inDst: true }], opts, here);
      expect(sorted(got)).toEqual(sorted(here));
      // A second share on the same worker.
      worker.postMessage({ type: 'compare', items: [{ rel: 'album-0', inSrc: true, inDst: true }] });
      const again = emptyDiff();
      for (let m = await next(); m.type !== 'done'; m = await next()) if (m.type === 'part') mergeDiff(again, m.diff);
      expect(again.copies.map((c) => c.rel)).toEqual(['album-0/t1.mp3']);
      expect(messages.filter((m) => m.type === 'part').length).toBe(2); // small shares: one part each
    } finally {
      await worker.terminate();
    }
  });

  test('a share with thousands of differences comes in several parts, and whole', async () => {
    const big = tempProject('upload-sync-worker-');
    projects.push(big);
    const files: Record<string, string> = {};
    for (let f = 0; f < 4; f++) for (let i = 0; i < 700; i++) files[`album-${f}/t${i}.mp3`] = `${f}/${i}`;
    await writeTree(big.source, files);
    const opts = options(big);
    const worker = new Worker(BUILT_WORKER.esm, { workerData: { source: big.source, dest: big.dest, opts, copy: { strategy: 'copy', fileMode: null } }, execArgv: [] });
    const inbox: WorkerMessage[] = [];
    worker.on('message', (m: WorkerMessage) => inbox.push(m));
    try {
      await waitFor(() => inbox.length > 0, { message: 'ready' });
      worker.postMessage({ type: 'compare', items: [{ rel: '', inSrc: true, inDst: false }] });
      await waitFor(() => inbox.some((m) => m.type === 'done'), { message: 'the share done' });
      const parts = inbox.filter((m): m is Extract<WorkerMessage, { type: 'part' }> => m.type === 'part');
      expect(parts.length).toBeGreaterThan(1);
      const got = emptyDiff();
      for (const m of parts) mergeDiff(got, m.diff);
      expect(got.copies.map((c) => c.rel).sort()).toEqual(Object.keys(files).sort());
      expect(got.dirs.map((d) => d.rel).sort()).toEqual(['album-0', 'album-1', 'album-2', 'album-3']);
    } finally {
      await worker.terminate();
    }
  });
});

test('the built package syncs a changed tree to the same result as the one-thread source', async () => {
  const a = await changedProject();
  const b = tempProject('upload-sync-worker-');
  projects.push(b);
  cpSync(a.root, b.root, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true, force: true });

  // One thread: this process runs src/, where no built worker exists.
  const one = await syncUploads({ source: a.source, dest: a.dest, force: true, delete: true, lockDir: join(a.root, 'locks') });
  // The built package, in a child: it starts a helper for this tree (the helper takes a share if it is up in time).
  const code = `
    import { syncUploads } from ${JSON.stringify(DIST_ESM)};
    const r = await syncUploads({ source: ${JSON.stringify(b.source)}, dest: ${JSON.stringify(b.dest)}, force: true, delete: true, lockDir: ${JSON.stringify(join(b.root, 'locks'))} });
    process.stdout.write(JSON.stringify(r));`;
  const child = await run(process.execPath, ['--input-type=module', '-e', code], { env: cleanEnv() });
  expect(child.stderr).toBe('');
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
