// The event sources alone, on a real temp folder: both keep the same contract (what `SourceEvents`
// says), so one suite runs for each.
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import type { EventSource, SourceEvents } from '../src/watch/events.js';
import { NativeSource } from '../src/watch/native-source.js';
import { loadChokidar, PollingSource } from '../src/watch/polling-source.js';
import { tempProject, waitFor, writeTree } from './helpers.js';

let p: ReturnType<typeof tempProject>;
let source: EventSource | undefined;
beforeEach(async () => {
  p = tempProject('upload-sync-sources-');
  await mkdir(p.source, { recursive: true });
});
afterEach(async () => {
  await source?.close();
  source = undefined;
  await p.cleanup();
});

describe.each(['native', 'polling'] as const)('%s source', (mode) => {
  /** A started source on the temp source folder, and what it reported, as `kind rel` lines. */
  async function start(): Promise<string[]> {
    const seen: string[] = [];
    const out: SourceEvents = {
      changed: (rel, cause) => seen.push(`${cause} ${rel}`),
      folderAdded: (rel) => seen.push(`folderAdded ${rel}`),
      folderRemoved: (rel) => seen.push(`folderRemoved ${rel}`),
      error: (err) => seen.push(`error ${String(err)}`),
    };
    const options = { root: p.source, source: p.source, dest: p.dest, extensions: null, stableMs: 100, pollMs: 10 };
    source = mode === 'native' ? new NativeSource(options, out) : new PollingSource(await loadChokidar(), options, out);
    expect(source.mode).toBe(mode);
    await source.start();
    return seen;
  }
  const about = (seen: string[], rel: string) => seen.filter((l) => l.endsWith(` ${rel}`));

  test('a new file is reported; dot names and partial uploads never are', async () => {
    const seen = await start();
    await writeTree(p.source, { '.hidden': 'x', 'song.mp3.part': 'x', '.dot/in.mp3': 'x' });
    await writeFile(join(p.source, 'a.mp3'), 'a');
    await waitFor(() => about(seen, 'a.mp3').length > 0, { message: 'an event for a.mp3' });
    expect(about(seen, 'a.mp3').every((l) => l.startsWith('event '))).toBe(true);
    expect(seen.filter((l) => l.includes('.hidden') || l.includes('.part') || l.includes('.dot'))).toEqual([]);
    expect(seen.filter((l) => l.startsWith('error'))).toEqual([]);
  });

  test('a folder created with a file in it: the folder is reported, and the file (by an event or a listing)', async () => {
    const seen = await start();
    const staging = join(p.root, 'staging');
    await writeTree(staging, { 'deep/x.mp3': 'x' });
    await rename(staging, join(p.source, 'album')); // arrives whole: no event for what is inside
    await waitFor(() => about(seen, 'album/deep/x.mp3').length > 0, { message: 'album/deep/x.mp3 reported' });
    expect(seen).toEqual(expect.arrayContaining(['folderAdded album', 'folderAdded album/deep']));
    expect(about(seen, 'album/deep/x.mp3').every((l) => /^(event|listed) /.test(l))).toBe(true);
  });

  test('a folder removed is reported as one', async () => {
    await writeTree(p.source, { 'album/x.mp3': 'x' });
    const seen = await start();
    await rm(join(p.source, 'album'), { recursive: true });
    await waitFor(() => seen.includes('folderRemoved album'), { message: 'folderRemoved album' });
  });

  // Native only, by design: chokidar's polling says nothing when the folder it was given goes (the
  // watcher's check of the source folder every second covers both modes, see watcher.test.ts
  // "the source folder removed and created again: the watcher recovers"); inotify does, at once.
  if (mode === 'native') test('the source folder itself removed is reported as the path \'\'', async () => {
    const seen = await start();
    await rm(p.source, { recursive: true });
    await waitFor(() => seen.some((l) => /^\w+ $/.test(l)), { message: "an event for ''" });
  });

  test('rescan() lists new folders now; after close() nothing is reported', async () => {
    const seen = await start();
    await mkdir(join(p.source, 'new'));
    await waitFor(() => seen.includes('folderAdded new'), { message: 'folderAdded new' });
    await writeFile(join(p.source, 'new', 'y.mp3'), 'y');
    await source!.rescan();
    expect(about(seen, 'new/y.mp3').length).toBeGreaterThan(0); // by its event, or by this listing at the latest
    await source!.close();
    const n = seen.length;
    await writeFile(join(p.source, 'after.mp3'), 'z');
    await mkdir(join(p.source, 'after'));
    // Nothing to wait for (no report must come): a second source on the same folder shows the
    // events have been delivered, then this one is checked.
    const witness = await start();
    await writeFile(join(p.source, 'marker.mp3'), 'm');
    await waitFor(() => about(witness, 'marker.mp3').length > 0, { message: 'the marker seen by a second source' });
    expect(seen.length).toBe(n);
  });
});
