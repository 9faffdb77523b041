import type { Stats } from 'node:fs';
import { basename } from 'node:path';
// Types only: chokidar itself is loaded by `loadChokidar()`, so the main entry (and
// `require('upload-sync')`) never loads it.
import type { FSWatcher } from 'chokidar';
import { isIgnoredName, matchesExtensions } from '../shared/filter.js';
import { relOf, type EventSource, type SourceEvents } from './events.js';
import { NewFolders } from './new-folders.js';

export type Chokidar = typeof import('chokidar');

/**
 * chokidar 5 is ESM-only: a real dynamic `import()`, which the CJS build keeps as written (a
 * `require()` would fail), and which runs only when a watcher starts.
 */
export async function loadChokidar(): Promise<Chokidar> {
  return await import('chokidar');
}

export interface PollingSourceOptions {
  /** The source folder's real path; `null` while it is missing (its parent is watched then). */
  root: string | null;
  source: string;
  extensions: ReadonlySet<string> | null;
  stableMs: number;
  pollMs: number;
}

/**
 * Polling through chokidar: what native events cannot do (network filesystems, the inotify limit
 * reached). It polls every file and holds state for each: CPU and memory grow with the tree.
 */
export class PollingSource implements EventSource {
  readonly mode = 'polling';
  private readonly base: string;
  private readonly lister: NewFolders | null;
  private fsw: FSWatcher | null = null;
  /** Ends the wait for chokidar's `ready` when `close()` comes first. */
  private stopWaiting: (() => void) | null = null;
  private closed = false;

  constructor(
    private readonly chokidar: Chokidar,
    private readonly options: PollingSourceOptions,
    private readonly out: SourceEvents,
  ) {
    const { root, stableMs, pollMs } = options;
    this.base = root ?? options.source;
    this.lister = root === null ? null : new NewFolders(root, { stableMs, pollMs }, { file: (rel) => this.out.changed(rel, 'listed'), folder: (rel) => this.addFolder(rel) });
  }

  /** Resolves once chokidar's first scan is done. */
  async start(): Promise<void> {
    if (this.closed) return;
    const fsw = new this.chokidar.FSWatcher({
      ignoreInitial: true, // the reconcile covers what is already there
      followSymlinks: false, // symlinks are synced (or refused) by the engine, never followed out
      usePolling: true,
      persistent: true, // an open watcher keeps its process alive
      ignored: (path: string, stats?: Stats) => this.isIgnored(path, stats),
    });
    this.fsw = fsw;
    fsw.on('all', (event, path) => {
      if (!this.closed) this.onEvent(event, path);
    });
    fsw.on('error', (err: unknown) => {
      if (!this.closed) this.out.error(err);
    });
    await new Promise<void>((resolve) => {
      this.stopWaiting = resolve;
      fsw.once('ready', resolve);
      // A missing source is watched too: chokidar then watches its parent, which keeps the process alive.
      fsw.add(this.base);
    });
    this.stopWaiting = null;
  }

  async rescan(): Promise<void> {
    await this.lister?.listAll();
  }

  /** Rejects when chokidar fails to close. */
  async close(): Promise<void> {
    this.closed = true;
    this.lister?.close();
    this.stopWaiting?.();
    this.stopWaiting = null;
    await this.fsw?.close();
  }

  /** Dotfiles (our temp files among them), partial uploads, and files the extension filter excludes: chokidar does not poll them. */
  private isIgnored(path: string, stats?: Stats): boolean {
    const rel = relOf(this.base, path);
    if (rel === null || rel === '') return false;
    if (rel.split('/').some(isIgnoredName)) return true;
    return stats?.isFile() === true && !matchesExtensions(basename(path), this.options.extensions);
  }

  private onEvent(event: string, abs: string): void {
    const rel = relOf(this.base, abs);
    if (rel === null) return;
    if (rel === '') {
      this.out.changed('', 'event'); // the source folder itself was removed or created
      return;
    }
    if (rel.split('/').some(isIgnoredName)) return;
    switch (event) {
      case 'add':
      case 'change':
        this.out.changed(rel, 'event');
        break;
      case 'unlink':
        this.out.changed(rel, 'removed');
        break;
      case 'addDir':
        this.addFolder(rel);
        break;
      case 'unlinkDir':
        this.lister?.forget(rel);
        this.out.folderRemoved(rel);
        break;
    }
  }

  private addFolder(rel: string): void {
    if (this.lister?.add(rel) ?? true) this.out.folderAdded(rel);
  }
}
