/**
 * The source as a cleanup sees it. Orphan mode trusts it only while it is provably the folder that
 * was listed: it must exist, hold at least one file a sync would take, and keep its identity
 * (`dev:ino`) to the moment of each deletion, or the run refuses (an unmounted or emptied source
 * must not empty the mirror). Also the one thing cleanup removes from the source: temp files of
 * uploads whose writer died.
 */
import { lstatSync, realpathSync, unlinkSync } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { CleanupConfig } from '../config/config.js';
import { isInside } from '../config/paths.js';
import { deadTempOwner } from '../engine/publish.js';
import { walk, type Listing } from '../engine/walk.js';
import { UploadSyncError, errorCode, errorMessage } from '../shared/errors.js';
import { formatBytes } from '../shared/log.js';
import type { CleanupReport } from './report.js';

export class CleanupSource {
  /** The source as listed (orphan mode), `null` before `list`. */
  listing: Listing | null = null;
  private id = '';

  constructor(private readonly config: Pick<CleanupConfig, 'source' | 'extensions' | 'dryRun'>) {}

  refuse(why: string): never {
    const { source } = this.config;
    throw new UploadSyncError(
      'ERR_SOURCE_EMPTY',
      `Source folder ${source} ${why}; refusing to remove orphans from dest (an unmounted or emptied source must not empty the mirror). Check UPLOAD_SYNC_SOURCE / \`source\``,
      { path: source },
    );
  }

  /** Notes the source folder's identity; refuses when it is missing or not a folder. */
  async check(): Promise<void> {
    this.id = await this.identity();
  }

  /** Refuses when the source folder is no longer the one `check` saw (unmounted, replaced). */
  async assertUnchanged(): Promise<void> {
    if ((await this.identity()) !== this.id) this.refuse('changed during the cleanup');
  }

  /** Lists the source; a folder that cannot be read is an error, and nothing under it counts as orphaned. */
  async list(report: CleanupReport): Promise<void> {
    const { config } = this;
    const sourceReal = await realpath(config.source);
    this.listing = await walk(config.source, '', { extensions: config.extensions, sourceReal, temps: true });
    for (const e of this.listing.errors) {
      report.fail(e.path, Object.assign(new Error(`In the source: ${e.message}; nothing under it is removed from dest`), { code: e.code }));
    }
    if (this.listing.files.size === 0) this.refuse('holds no file that would be synced');
  }

  /** Whether nothing under `rel` may be judged an orphan: the source folder holding it could not be read. */
  underUnreadable(rel: string): boolean {
    return this.listing?.unreadable.some((dir) => dir === '' || rel === dir || rel.startsWith(`${dir}/`)) ?? false;
  }

  /**
   * Our temp files in the source whose writer died (an upload killed mid-write, `saveUpload`'s
   * `.upload-sync-<pid>-….tmp`): removed by the dead-pid rule of the sync (`deadTempOwner`),
   * checked again right before each unlink, as is the folder (still the real one under source).
   * Not counted by `maxDelete` (garbage, never an upload). A live process's temp file stays.
   */
  async removeDeadTemps(report: CleanupReport, signal: AbortSignal | undefined): Promise<void> {
    const { config } = this;
    const listing = this.listing ?? (await walk(config.source, '', { extensions: config.extensions, temps: true, signal }).catch(() => null));
    if (listing === null || listing.temps.size === 0) return;
    let sourceReal: string;
    try {
      sourceReal = realpathSync(config.source);
    } catch {
      return; // gone since the walk
    }
    for (const rel of [...listing.temps.keys()].sort()) {
      const pid = deadTempOwner(basename(rel));
      if (pid === null) continue; // its upload is still being written (or the name is not one of ours)
      const abs = join(config.source, rel);
      try {
        const st = lstatSync(abs);
        const folder = realpathSync(dirname(abs));
        if (!st.isFile() || (folder !== sourceReal && !isInside(folder, sourceReal))) continue;
        if (!config.dryRun) unlinkSync(abs);
        const verb = config.dryRun ? 'Would remove' : 'Removed';
        report.removedFromSource(rel, st.size, `${verb} ${rel} from the source, a temp file of an upload that died (pid ${pid}, ${formatBytes(st.size)})`);
      } catch (err) {
        if (errorCode(err) !== 'ENOENT') report.fail(rel, Object.assign(new Error(`In the source: ${errorMessage(err)}`), { code: errorCode(err) }));
      }
    }
  }

  /** The source folder as it is now: `dev:ino`, or a refusal when it is missing. */
  private async identity(): Promise<string> {
    const st = await stat(this.config.source).catch((err) => (['ENOENT', 'ENOTDIR'].includes(errorCode(err)) ? null : Promise.reject(err)));
    if (st === null) this.refuse('does not exist');
    if (!st.isDirectory()) this.refuse('is not a folder');
    return `${st.dev}:${st.ino}`;
  }
}
