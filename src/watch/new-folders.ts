import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isIgnoredName } from '../shared/filter.js';
import { childOf } from './events.js';

/** What a listing finds that the last one did not. */
export interface Found {
  file(rel: string): void;
  folder(rel: string): void;
}

interface Listing {
  /** Names at the last listing (`/`-suffixed for folders); `null` before the first. */
  names: Set<string> | null;
  key: string;
  /** When the listing last changed. */
  since: number;
}

/**
 * Lists each folder created lately every `pollMs` until its listing has not changed for
 * `stableMs`. A file written into a folder a moment after the folder was made can come before
 * anyone watches that folder (chokidar between its first read of the folder and its watch of it;
 * a native watch opened a moment late): no event ever tells of it, only a listing does.
 */
export class NewFolders {
  private readonly folders = new Map<string, Listing>();
  private timer: NodeJS.Timeout | null = null;
  private listing = false;
  private closed = false;

  constructor(
    private readonly root: string,
    private readonly timing: { stableMs: number; pollMs: number },
    private readonly found: Found,
  ) {}

  /** Lists `rel` from now on, until its listing is stable. `false` when it is listed already. */
  add(rel: string): boolean {
    if (this.closed || this.folders.has(rel)) return false;
    this.folders.set(rel, { names: null, key: '', since: Date.now() });
    this.schedule();
    return true;
  }

  /** A folder gone: no more listings of it or of anything under it. */
  forget(rel: string): void {
    for (const dir of this.folders.keys()) if (dir === rel || dir.startsWith(`${rel}/`)) this.folders.delete(dir);
  }

  /** One listing of every folder now. */
  async listAll(): Promise<void> {
    await Promise.all([...this.folders].map(([rel, listing]) => this.list(rel, listing)));
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.folders.clear();
  }

  private schedule(): void {
    if (this.timer || this.listing || this.closed || this.folders.size === 0) return;
    this.timer = setTimeout(() => void this.tick(), this.timing.pollMs).unref();
  }

  private async tick(): Promise<void> {
    this.timer = null;
    this.listing = true;
    try {
      await this.listAll();
    } finally {
      this.listing = false;
    }
    this.schedule();
  }

  /** Names not seen before are reported. Done with the folder once its listing is stable. */
  private async list(rel: string, listing: Listing): Promise<void> {
    let entries;
    try {
      entries = await readdir(join(this.root, rel), { withFileTypes: true });
    } catch {
      this.folders.delete(rel); // gone, or unreadable (the reconcile reports that)
      return;
    }
    if (this.closed || this.folders.get(rel) !== listing) return;
    const names = new Set<string>();
    for (const e of entries) {
      if (isIgnoredName(e.name)) continue;
      const name = e.isDirectory() ? `${e.name}/` : e.name;
      names.add(name);
      if (listing.names?.has(name)) continue;
      if (e.isDirectory()) this.found.folder(childOf(rel, e.name));
      else if (e.isFile() || e.isSymbolicLink()) this.found.file(childOf(rel, e.name));
    }
    const key = [...names].sort().join('\0');
    const now = Date.now();
    if (listing.names === null || key !== listing.key) {
      Object.assign(listing, { names, key, since: now });
    } else if (now - listing.since >= this.timing.stableMs) {
      this.folders.delete(rel);
    }
  }
}
