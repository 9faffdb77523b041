/**
 * Configuration per subsystem (issue 10, point 5): one environment serves every subsystem, but a
 * bad value breaks only the subsystem that reads it, at its start, with ERR_CONFIG; the others go on.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { cleanupOld, createWatcher, resolveConfig, syncUploads, UploadSyncError } from '../src/index.js';
import { createUploadsRoute, saveUpload } from '../src/next.js';
import { exists, tempProject, writeTree } from './helpers.js';

for (const key of Object.keys(process.env)) {
  if (/UPLOAD_SYNC/.test(key)) delete process.env[key];
}

let p: ReturnType<typeof tempProject>;
beforeEach(async () => {
  p = tempProject('upload-sync-config-sub-');
  await writeTree(p.source, { 'song.mp3': 'song bytes' });
});
afterEach(async () => {
  for (const key of Object.keys(process.env)) if (/UPLOAD_SYNC/.test(key)) delete process.env[key];
  await p.cleanup();
});

const paths = () => ({ root: p.root, source: p.source, dest: p.dest, lockDir: join(p.root, 'locks'), force: true });

/** Every subsystem, started as an app would, each reduced to 'works' or its error code. */
async function outcomes(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const route = createUploadsRoute({ root: p.root, source: p.source, dest: p.dest });
  const res = await route.GET(new Request('http://localhost/uploads/song.mp3'));
  out.route = res.status === 200 && (await res.text()) === 'song bytes' ? 'works' : `status ${res.status}`;

  try {
    const saved = await saveUpload(new Uint8Array([1, 2, 3]), { ...paths(), name: 'up.mp3', sync: false });
    out.saveUpload = (await exists(saved.path)) ? 'works' : 'not saved';
  } catch (err) {
    out.saveUpload = (err as UploadSyncError).code;
  }

  const synced = await syncUploads(paths());
  out.syncUploads = synced.status === 'ok' ? 'works' : synced.errors[0]!.code;

  try {
    const w = createWatcher(paths());
    await w.ready;
    await w.close();
    out.createWatcher = 'works';
  } catch (err) {
    out.createWatcher = (err as UploadSyncError).code;
  }

  const cleaned = await cleanupOld({ ...paths(), dryRun: true });
  out.cleanupOld = cleaned.status === 'ok' ? 'works' : cleaned.errors[0]!.code;
  return out;
}

const ALL_WORK = { route: 'works', saveUpload: 'works', syncUploads: 'works', createWatcher: 'works', cleanupOld: 'works' };

describe('a bad value breaks only its own subsystem', () => {
  test('with a clean environment every subsystem works (the baseline the cases below change)', async () => {
    expect(await outcomes()).toEqual(ALL_WORK);
  });

  test.each([
    ['UPLOAD_SYNC_STABLE_MS', '1s'],
    ['UPLOAD_SYNC_DEBOUNCE_MS', 'soon'],
    ['UPLOAD_SYNC_MAX_WAIT_MS', '-5'],
    ['UPLOAD_SYNC_RECONCILE_MS', '10m'],
  ])('a watcher variable (%s=%s) breaks createWatcher only', async (name, value) => {
    process.env[name] = value;
    expect(await outcomes()).toEqual({ ...ALL_WORK, createWatcher: 'ERR_CONFIG' });
  });

  test.each([
    ['UPLOAD_SYNC_CLEANUP_DAYS', 'abc'],
    ['UPLOAD_SYNC_MAX_DELETE', '0'],
  ])('a cleanup variable (%s=%s) breaks cleanupOld only', async (name, value) => {
    process.env[name] = value;
    expect(await outcomes()).toEqual({ ...ALL_WORK, cleanupOld: 'ERR_CONFIG' });
  });

  test.each([
    ['UPLOAD_SYNC_STRATEGY', 'rsync'],
    ['UPLOAD_SYNC_DELETE', 'maybe'],
    ['UPLOAD_SYNC_FILE_MODE', '999'],
    ['UPLOAD_SYNC_DIR_MODE', 'rwx'],
  ])('a sync variable (%s=%s) breaks the syncs (and the watcher, which syncs), never the route, saving or cleanup', async (name, value) => {
    process.env[name] = value;
    expect(await outcomes()).toEqual({ ...ALL_WORK, syncUploads: 'ERR_CONFIG', createWatcher: 'ERR_CONFIG' });
  });

  test('saveUpload keeps the upload when only its sync is misconfigured: the sync result says why', async () => {
    process.env.UPLOAD_SYNC_STRATEGY = 'rsync';
    const saved = await saveUpload(new Uint8Array([4, 5, 6]), { ...paths(), name: 'kept.mp3' });
    expect(await exists(saved.path)).toBe(true);
    expect(saved.sync).toMatchObject({ status: 'failed', errors: [{ code: 'ERR_CONFIG' }] });
    expect(saved.sync!.errors[0]!.message).toMatch(/UPLOAD_SYNC_STRATEGY/);
  });

  test('the route answers a bad path variable with a clear ERR_CONFIG at its first request, as before (a path is its own setting)', async () => {
    process.env.UPLOAD_SYNC_EXTENSIONS = 'mp3,<script>';
    const res = await createUploadsRoute({ root: p.root, source: p.source, dest: p.dest }).GET(new Request('http://localhost/uploads/song.mp3'));
    expect(res.status).toBe(500);
  });

  test('resolveConfig (the public all-in-one) still reports any bad value', () => {
    process.env.UPLOAD_SYNC_STABLE_MS = '1s';
    expect(() => resolveConfig(paths())).toThrow(/UPLOAD_SYNC_STABLE_MS/);
  });
});
