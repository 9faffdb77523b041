import { lstat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { isIgnoredName } from '../shared/filter.js';
import { childOf, type EventSource, type SourceEvents } from './events.js';
import { FolderWatch, folderIdentity } from './folder-watch.js';
import { NewFolders } from './new-folders.js';

export interface NativeSourceOptions {
  /** The source folder's real path; `null` while it is missing (nothing is watched then). */
  root: string | null;
  /** The source folder as configured (named in events when `root` is `null`). */
  source: string;
  dest: string;
  stableMs: number;
  pollMs: number;
}

/**
 * Native events (inotify, FSEvents, ReadDirectoryChangesW) through a `FolderWatch`: a watch per
 * folder, none per file. `fs.watch` names an entry of a folder and says little more, so this looks
 * at an entry only where a folder may have appeared, gone, or been replaced; whether a file is
 * written, and when it is done, is the stability tracker's business.
 */
export class NativeSource implements EventSource {
  readonly mode = 'native';
  private readonly folders: FolderWatch;
  private readonly lister: NewFolders | null;
  private closed = false;

  constructor(
    private readonly options: NativeSourceOptions,
    private readonly out: SourceEvents,
  ) {
    const { root, stableMs, pollMs } = options;
    this.folders = new FolderWatch(root ?? options.source, {
      onEvent: (dir, event, name) => {
        if (!this.closed) this.onFolderEvent(dir, event, name);
      },
      onError: (err) => {
        if (!this.closed) this.out.error(err);
      },
    });
    this.lister = root === null ? null : new NewFolders(root, { stableMs, pollMs }, { file: (rel) => this.out.changed(rel, 'listed'), folder: (rel) => this.addFolder(rel) });
  }

  async start(): Promise<void> {
    if (this.options.root !== null) await this.folders.addTree('');
  }

  async rescan(): Promise<void> {
    await this.lister?.listAll();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.folders.close();
    this.lister?.close();
  }

  /**
   * `name` changed in the watched folder `dir`. A `rename` may also be a folder created, removed,
   * moved or replaced, which `onRename` looks at.
   */
  private onFolderEvent(dir: string, event: string, name: string | null): void {
    if (name === null) {
      // The platform did not say which entry: list the folder, as a new one is.
      this.addFolder(dir);
      return;
    }
    // A watched folder's own events (its removal; a chmod or utimes of it) come named after the
    // folder itself: the same as an event of an entry of that name inside it.
    const own = basename(dir === '' ? (this.options.root ?? this.options.source) : dir);
    if (dir === '' && name === own) this.out.changed('', 'event');
    if (isIgnoredName(name)) return; // `dir` passed already: dot folders are not watched
    const rel = childOf(dir, name);
    if (name === own) void this.onOwnName(rel, event);
    else this.onEntry(rel, event);
  }

  private onEntry(rel: string, event: string): void {
    this.out.changed(rel, 'event');
    if (event === 'rename') void this.onRename(rel);
  }

  /**
   * An event named after its own folder (`a/a`): an entry of that name only when one is there, in
   * the source or in dest, or watched; else it was the folder's own, and a sync would find nothing.
   */
  private async onOwnName(rel: string, event: string): Promise<void> {
    const { root, dest } = this.options;
    if (root === null) return;
    const there = (base: string) => lstat(join(base, rel)).then(() => true, () => false);
    const entry = this.folders.identity(rel) !== undefined || (await there(root)) || (await there(dest));
    if (entry && !this.closed) this.onEntry(rel, event);
  }

  /** A folder appeared (watched and listed like any new one), went (no longer watched), or was replaced. */
  private async onRename(rel: string): Promise<void> {
    if (this.options.root === null) return;
    const st = await lstat(join(this.options.root, rel)).catch(() => null);
    if (this.closed) return;
    const watched = this.folders.identity(rel);
    if (st?.isDirectory()) {
      if (watched === folderIdentity(st)) return;
      if (watched !== undefined) this.forget(rel); // replaced: its watch is on the old folder
      this.addFolder(rel);
    } else if (watched !== undefined) {
      this.forget(rel);
      this.out.folderRemoved(rel);
    }
  }

  /** Watched before its first listing: an entry created in between is in an event or in that listing. */
  private addFolder(rel: string): void {
    if (!this.folders.add(rel)) return; // gone already, or reported
    if (this.lister?.add(rel) ?? true) this.out.folderAdded(rel);
  }

  /** No watch and no listing for `rel` or anything under it. */
  private forget(rel: string): void {
    this.folders.remove(rel);
    this.lister?.forget(rel);
  }
}
