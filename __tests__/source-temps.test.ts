/**
 * Temp files of ours in the SOURCE (`public/uploads/.upload-sync-<pid36>-….tmp`): an upload killed
 * mid-write leaves one, and nothing else ever removes it. The next full sync and cleanup remove
 * those whose writer is dead, by the dead-pid rule the mirror's temp files follow; a live
 * process's temp file is never touched (this process's, and another live process's).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from '@jest/globals';
import { cleanupOld, syncUploads } from '../src/index.js';
import { cleanEnv, exists, runCli, tempProject, writeTree } from './helpers.js';

for (const key of Object.keys(process.env)) {
  if (/UPLOAD_SYNC/.test(key)) delete process.env[key];
}

let p: ReturnType<typeof tempProject>;
let alive: ChildProcess;
let deadPid = 0;

/** A temp name as `tempPathFor` makes it (pid in base 36, 12 hex digits; `_thread` for a helper thread). */
const tempName = (pid: number, n: number, thread?: number) => `.upload-sync-${pid.toString(36)}${thread === undefined ? '' : `_${thread}`}-${n.toString(16).padStart(12, '0')}.tmp`;

beforeAll(async () => {
  // A pid that was alive a moment ago and is gone now.
  const gone = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  deadPid = gone.pid!;
  await once(gone, 'exit');
  // Another live process (the CLI test below runs the sync in a child: there, the test's own pid is the foreign one).
  alive = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
});
afterAll(() => {
  alive.kill('SIGKILL');
});

beforeEach(() => {
  p = tempProject('upload-sync-source-temps-');
});
afterEach(async () => {
  await p.cleanup();
});

/** The source with a song and temp files of the dead process (at the top, in a folder, of a helper thread) and of two live ones. */
async function sourceWithTemps(): Promise<{ dead: string[]; live: string[] }> {
  await writeTree(p.source, { 'song.mp3': 'song', 'albums/track.mp3': 'track' });
  const dead = [tempName(deadPid, 1), `albums/${tempName(deadPid, 2)}`, `albums/${tempName(deadPid, 3, 2)}`];
  const live = [tempName(process.pid, 4), `albums/${tempName(alive.pid!, 5)}`];
  for (const rel of [...dead, ...live]) await writeFile(join(p.source, rel), `half an upload (${rel})`);
  return { dead, live };
}

async function tempsLeft(): Promise<string[]> {
  const all = (await readdir(p.source, { recursive: true })) as string[];
  return all.filter((rel) => rel.split('/').pop()!.startsWith('.upload-sync-')).sort();
}

const common = () => ({ source: p.source, dest: p.dest, force: true, lockDir: join(p.root, 'locks') });

describe('temp files of dead processes in the source', () => {
  test('a full sync removes them; a live process\'s stay; a dry run or a targeted sync removes none', async () => {
    const { dead, live } = await sourceWithTemps();
    expect((await syncUploads({ ...common(), dryRun: true })).status).toBe('ok');
    expect((await syncUploads({ ...common(), files: ['song.mp3'] })).status).toBe('ok');
    expect(await tempsLeft()).toEqual([...dead, ...live].sort());

    const r = await syncUploads(common());
    expect(r).toMatchObject({ status: 'ok', copied: ['albums/track.mp3'], errors: [] });
    expect(await tempsLeft()).toEqual(live.sort());
    // Never synced either.
    expect((await readdir(p.dest, { recursive: true })).sort()).toEqual(['albums', 'albums/track.mp3', 'song.mp3']);
  });

  test('`upload-sync sync` (another process: the test\'s own pid is a live foreign one) removes only the dead ones', async () => {
    const { live } = await sourceWithTemps();
    const r = await runCli(['sync', '--source', p.source, '--dest', p.dest], { cwd: p.root, env: cleanEnv({ UPLOAD_SYNC_LOCK_DIR: join(p.root, 'locks') }) });
    expect(r.code).toBe(0);
    expect(await tempsLeft()).toEqual(live.sort());
  });

  test('cleanup removes them (reported in removedFromSource), in orphan mode and by age alone; a live process\'s stay', async () => {
    const { dead, live } = await sourceWithTemps();
    await mkdir(p.dest, { recursive: true });
    const dry = await cleanupOld({ ...common(), dryRun: true });
    expect(dry.removedFromSource).toEqual([...dead].sort());
    expect(await tempsLeft()).toEqual([...dead, ...live].sort());

    const r = await cleanupOld(common());
    expect(r).toMatchObject({ status: 'ok', removed: [], removedFromSource: [...dead].sort(), errors: [] });
    expect(await tempsLeft()).toEqual(live.sort());
    expect(await exists(join(p.source, 'song.mp3'))).toBe(true);

    await writeFile(join(p.source, dead[0]!), 'another half upload');
    const all = await cleanupOld({ ...common(), orphansOnly: false });
    expect(all).toMatchObject({ status: 'ok', removedFromSource: [dead[0]], errors: [] });
    expect(await tempsLeft()).toEqual(live.sort());
  });
});
