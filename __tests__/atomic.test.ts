/**
 * Atomic publication: a reader polling the final name while a 64 MB file is synced (by the CLI in
 * another process) never sees it partial or mixed, and a copy that fails leaves no temp file.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { rm, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { syncUploads, type SyncResult } from '../src/index.js';
import { cleanEnv, readTree, runCli, tempFiles, tempProject, writeTree, type RunResult } from './helpers.js';

// In-process calls read process.env: keep the machine's upload-sync settings out of this file.
for (const key of Object.keys(process.env)) {
  if (/UPLOAD_SYNC/.test(key)) delete process.env[key];
}

const SIZE = 64 * 1024 * 1024;
const SAMPLE = 64 * 1024;
/** Where a reader samples the file each time it looks: head, middle, tail. */
const OFFSETS = [0, SIZE / 2 - SAMPLE / 2, SIZE - SAMPLE];

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const isMissing = (err: unknown) => ['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '');

const projects: Array<ReturnType<typeof tempProject>> = [];
function project(): ReturnType<typeof tempProject> {
  const p = tempProject('upload-sync-atomic-');
  projects.push(p);
  return p;
}
afterEach(async () => {
  await Promise.all(projects.splice(0).map((p) => p.cleanup()));
});

/** Runs the CLI `sync` on the project; while it runs, calls `look` in a tight synchronous loop. */
async function syncWhilePolling(root: string, look: () => void): Promise<{ run: RunResult; looks: number }> {
  let finished = false;
  const running = runCli(['sync', '--root', root, '--json'], { env: cleanEnv({ UPLOAD_SYNC_LOCK_DIR: join(root, 'locks') }) }).finally(() => {
    finished = true;
  });
  let looks = 0;
  while (!finished) {
    for (let i = 0; i < 50; i++, looks++) look();
    await new Promise((resolve) => setImmediate(resolve)); // let the child's exit be seen
  }
  return { run: await running, looks };
}

/** The three samples of an open file. */
function samplesOf(fd: number): Buffer[] {
  return OFFSETS.map((offset) => {
    const buf = Buffer.alloc(SAMPLE);
    const n = readSync(fd, buf, 0, SAMPLE, offset);
    return buf.subarray(0, n);
  });
}

describe('a reader never sees a partial file', () => {
  test('a new 64 MB file appears under its final name only complete', async () => {
    const { root, source, dest } = project();
    const content = randomBytes(SIZE);
    const hash = sha256(content);
    await writeTree(source, { 'album/big.flac': content });
    const target = join(dest, 'album', 'big.flac');

    let missing = 0;
    let present = 0;
    let hashed = 0;
    let missingAfterPresent = 0;
    const problems: string[] = [];
    const { run, looks } = await syncWhilePolling(root, () => {
      let fd: number;
      try {
        fd = openSync(target, 'r');
      } catch (err) {
        if (!isMissing(err)) throw err;
        missing++;
        if (present > 0) missingAfterPresent++;
        return;
      }
      try {
        present++;
        const size = fstatSync(fd).size;
        if (size !== SIZE) problems.push(`size ${size}`);
        if (hashed < 3) {
          // Full content, the first few times it is seen (reading 64 MB takes a while).
          hashed++;
          if (sha256(readFileSync(fd)) !== hash) problems.push('content differs from the source');
        } else {
          samplesOf(fd).forEach((s, i) => {
            if (!s.equals(content.subarray(OFFSETS[i]!, OFFSETS[i]! + SAMPLE))) problems.push(`sample at ${OFFSETS[i]} differs`);
          });
        }
      } finally {
        closeSync(fd);
      }
    });

    expect(run.code).toBe(0);
    expect((JSON.parse(run.stdout) as SyncResult).copied).toEqual(['album/big.flac']);
    expect(problems).toEqual([]);
    // The reader was looking before the file was published, and saw it appear.
    expect(missing).toBeGreaterThan(0);
    expect(looks).toBeGreaterThan(missing);
    expect(missingAfterPresent).toBe(0);
    expect(hashed).toBeGreaterThanOrEqual(1);
    expect(sha256(readFileSync(target))).toBe(hash);
    expect(await tempFiles(dest)).toEqual([]);
  });

  test('updating a mirrored 64 MB file: the reader sees the old or the new content, never a mix', async () => {
    const { root, source, dest } = project();
    const oldContent = randomBytes(SIZE);
    const newContent = randomBytes(SIZE);
    const hashes = { old: sha256(oldContent), new: sha256(newContent) };
    const srcPath = join(source, 'album', 'big.flac');
    const target = join(dest, 'album', 'big.flac');
    await writeTree(source, { 'album/big.flac': oldContent });
    await utimes(srcPath, new Date('2024-01-01T00:00:00Z'), new Date('2024-01-01T00:00:00Z'));
    const first = await runCli(['sync', '--root', root], { env: cleanEnv({ UPLOAD_SYNC_LOCK_DIR: join(root, 'locks') }) });
    expect(first.code).toBe(0);
    expect(sha256(readFileSync(target))).toBe(hashes.old);

    // Same size, new bytes, new mtime: the next sync updates it.
    writeFileSync(srcPath, newContent);

    const versions: Array<'old' | 'new'> = [];
    const problems: string[] = [];
    let fullChecks = 0;
    const { run } = await syncWhilePolling(root, () => {
      let fd: number;
      try {
        fd = openSync(target, 'r');
      } catch (err) {
        if (!isMissing(err)) throw err;
        problems.push('the final name was missing during the update');
        return;
      }
      try {
        const size = fstatSync(fd).size;
        if (size !== SIZE) problems.push(`size ${size}`);
        const samples = samplesOf(fd);
        const matches = (content: Buffer) => samples.every((s, i) => s.equals(content.subarray(OFFSETS[i]!, OFFSETS[i]! + SAMPLE)));
        const version = matches(oldContent) ? 'old' : matches(newContent) ? 'new' : null;
        if (version === null) {
          problems.push('samples match neither version (a mix or a partial file)');
          return;
        }
        // A full hash whenever a version is first seen, and a few more times.
        if (versions[versions.length - 1] !== version || fullChecks < 3) {
          fullChecks++;
          const h = sha256(readFileSync(fd));
          if (h !== hashes.old && h !== hashes.new) problems.push('full content matches neither version');
          else if (h !== hashes[version]) problems.push('full content is not the version the samples showed');
        }
        versions.push(version);
      } finally {
        closeSync(fd);
      }
    });

    expect(run.code).toBe(0);
    expect((JSON.parse(run.stdout) as SyncResult).updated).toEqual(['album/big.flac']);
    expect(problems).toEqual([]);
    expect(versions[0]).toBe('old'); // the reader was looking before the new version was published
    // Old, then new, never back: the switch happened once, atomically.
    expect(versions.filter((v, i) => i > 0 && v !== versions[i - 1])).toEqual(versions.includes('new') ? ['new'] : []);
    expect(fullChecks).toBeGreaterThanOrEqual(3);
    expect(sha256(readFileSync(target))).toBe(hashes.new);
    expect(await tempFiles(dest)).toEqual([]);
  });
});

describe('a failed copy leaves no temp file', () => {
  // chmod cannot make a folder unwritable for root, and a read-only folder fails before any temp
  // file exists. So the failure used here works for every user: while the copy is in flight (its
  // temp file exists), a non-empty folder takes the file's final name, and the rename fails.
  test('rename onto a folder that appeared during the copy: error entry with a code, temp removed', async () => {
    const { root, source, dest } = project();
    const content = Buffer.alloc(16 * 1024 * 1024, 'song-');
    await writeTree(source, { 'album/song.flac': content });
    const lockDir = join(root, 'locks');
    const target = join(dest, 'album', 'song.flac');

    let finished = false;
    const running = syncUploads({ source, dest, force: true, lockDir }).finally(() => {
      finished = true;
    });
    // Check once per event-loop turn: the copy's completion, the stat and the utimes after it each
    // take a turn, so the temp file is seen before the rename can run.
    let blocked = false;
    const deadline = Date.now() + 20_000;
    while (!blocked && !finished && Date.now() < deadline) {
      let names: string[] = [];
      try {
        names = readdirSync(join(dest, 'album'));
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
      if (names.some((n) => n.startsWith('.upload-sync-'))) {
        mkdirSync(target);
        writeFileSync(join(target, 'keep.txt'), 'not yours');
        blocked = true;
      } else {
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    expect(blocked).toBe(true);
    const result = await running;

    expect(result.status).toBe('failed');
    expect(result.copied).toEqual([]);
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]?.path).toBe('album/song.flac');
    expect(['EISDIR', 'ENOTEMPTY', 'EEXIST', 'EPERM']).toContain(result.errors[0]?.code);
    expect(result.errors[0]?.message).toBeTruthy();
    expect(await tempFiles(dest)).toEqual([]);
    // The folder in the way is left alone.
    expect(await readTree(dest)).toEqual({ 'album/song.flac/keep.txt': 'not yours' });

    // Once it is out of the way, the next run publishes the file.
    await rm(target, { recursive: true });
    const again = await syncUploads({ source, dest, force: true, lockDir });
    expect(again.status).toBe('ok');
    expect(again.copied).toEqual(['album/song.flac']);
    expect(readFileSync(target).equals(content)).toBe(true);
    expect(await tempFiles(dest)).toEqual([]);
  });
});
