// `fs` as an object, looked up at each call: the ENOSPC test replaces `fs.watch` to act as the
// system limit does (a machine-wide setting, not lowered for one test).
import fs, { type FSWatcher, type Stats } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { errorCode } from '../shared/errors.js';
import { isIgnoredName } from '../shared/filter.js';

/** What a `FolderWatch` reports. Folder paths are source-relative and `/`-separated, `''` for the source itself. */
export interface FolderWatchHandlers {
  /**
   * `fs.watch` reported `name` in folder `dir`: created, written, removed, renamed or its metadata
   * changed (on Linux, `'change'` is a write to a file; everything else, folders included, comes
   * as `'rename'`). `null`: the platform did not say which entry.
   */
  onEvent(dir: string, event: string, name: string | null): void;
  /** A folder could not be watched or read, or its watch failed later. After ENOSPC or EMFILE the whole watch is closed. */
  onError(err: unknown, dir: string): void;
}

/**
 * Tells a folder from one made later under the same name, whose watch must be opened again: the
 * inode alone does not (ext4 gives a folder made just after another was removed the same inode
 * number), the inode and the birth time do (on filesystems without a birth time, the inode alone).
 */
export const folderIdentity = (st: Stats) => `${st.ino}:${st.birthtimeMs}`;

/** Errors of a folder that is not there (anymore): not worth a report, its parent's event says it is gone. */
const isGone = (err: unknown) => ['ENOENT', 'ENOTDIR'].includes(errorCode(err));

/**
 * Native events for a tree with one `fs.watch` per folder and none per file: a folder's watch
 * reports its files' names too (inotify, FSEvents and ReadDirectoryChangesW all do). What changed
 * is left to the caller, who stats only the names it is told about. Memory and inotify watches
 * grow with the number of folders, not files: chokidar keeps a watch and state per file, and its
 * start-up scan stats every file of the tree at once (740 MB for 100,000 files, 230 MB even with
 * the files ignored).
 */
export class FolderWatch {
  /** Watched folders: their watch and the `folderIdentity` of the folder it was opened on. */
  private readonly folders = new Map<string, { watcher: FSWatcher; id: string }>();
  private closed = false;

  constructor(
    private readonly root: string,
    private readonly handlers: FolderWatchHandlers,
  ) {}

  /** The `folderIdentity` of the folder `rel`'s watch was opened on; `undefined` when `rel` is not watched. */
  identity(rel: string): string | undefined {
    return this.folders.get(rel)?.id;
  }

  /**
   * Watches `rel` and the folders under it (dot folders left out), each before it is listed, so an
   * entry created meanwhile is in an event or in the listing. One folder is read at a time and no
   * file is stat-ed. Resolves when done, or at once after `close()`.
   */
  async addTree(rel: string): Promise<void> {
    const stack = [rel];
    while (stack.length > 0 && !this.closed) {
      const dir = stack.pop()!;
      if (!this.add(dir)) continue;
      let entries;
      try {
        entries = await readdir(join(this.root, dir), { withFileTypes: true });
      } catch (err) {
        if (!isGone(err) && !this.closed) this.handlers.onError(err, dir);
        continue;
      }
      for (const e of entries) if (e.isDirectory() && !isIgnoredName(e.name)) stack.push(dir === '' ? e.name : `${dir}/${e.name}`);
    }
  }

  /** Watches one folder (not the folders under it). `false` when it is not watched (gone, not a folder, an error reported, closed). */
  add(rel: string): boolean {
    if (this.closed) return false;
    if (this.folders.has(rel)) return true;
    const abs = join(this.root, rel);
    let watcher: FSWatcher;
    let id: string;
    try {
      // Its identity first: if the folder is replaced before the watch opens, the next look sees another one and watches again.
      const st = fs.lstatSync(abs);
      if (!st.isDirectory()) return false;
      id = folderIdentity(st);
      watcher = fs.watch(abs, { persistent: true }, (event, name) => {
        if (!this.closed && this.folders.get(rel)?.watcher === watcher) this.handlers.onEvent(rel, event, name);
      });
    } catch (err) {
      if (isGone(err)) return false;
      // At the inotify limit every other folder fails too: stop here, once.
      if (['ENOSPC', 'EMFILE'].includes(errorCode(err))) this.close();
      this.handlers.onError(err, rel);
      return false;
    }
    watcher.on('error', (err) => {
      if (this.folders.get(rel)?.watcher !== watcher) return;
      this.remove(rel);
      if (!isGone(err)) this.handlers.onError(err, rel);
    });
    this.folders.set(rel, { watcher, id });
    return true;
  }

  /** Stops watching `rel` and every folder under it. */
  remove(rel: string): void {
    const prefix = rel === '' ? '' : `${rel}/`;
    for (const [dir, { watcher }] of this.folders) {
      if (dir === rel || dir.startsWith(prefix)) {
        watcher.close();
        this.folders.delete(dir);
      }
    }
  }

  close(): void {
    this.closed = true;
    for (const { watcher } of this.folders.values()) watcher.close();
    this.folders.clear();
  }
}
