import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { errorCode } from '../shared/errors.js';

/** What a pending path looks like now. The same `key` twice means no write in between. */
export interface Look {
  /** `size:mtime:ino` for a file; else `dir`, `other`, `gone`, or `error:CODE`. */
  key: string;
  /** `NaN` unless a file. */
  mtimeMs: number;
}

/** One `stat`: what the file at `path` looks like now. */
export async function lookAt(path: string): Promise<Look> {
  try {
    const st = await stat(path);
    if (st.isDirectory()) return { key: 'dir', mtimeMs: NaN };
    return st.isFile() ? { key: `${st.size}:${st.mtimeMs}:${st.ino}`, mtimeMs: st.mtimeMs } : { key: 'other', mtimeMs: NaN };
  } catch (err) {
    const code = errorCode(err);
    return { key: code === 'ENOENT' || code === 'ENOTDIR' ? 'gone' : `error:${code}`, mtimeMs: NaN };
  }
}

/** The kernel stamps mtimes from a coarse clock, a tick or so behind the time of the write. */
const MTIME_SLACK_MS = 20;

/**
 * When a file seen in a new state last changed. Its mtime says so exactly when it falls after the
 * previous look (which did not see this state) and not in the future; otherwise (a writer that sets
 * mtimes, a clock step) the change is taken to be now. Never before `since` (the last event).
 */
export function changedAt(mtimeMs: number, since: number, previousLook: number, now: number): number {
  const at = mtimeMs + MTIME_SLACK_MS;
  return Number.isFinite(at) && mtimeMs > previousLook && at <= now ? Math.max(since, at) : now;
}

/** How often pending paths are looked at: a tenth of `stableMs`, within 10–100 ms. */
export const pollInterval = (stableMs: number) => Math.min(100, Math.max(10, Math.round(stableMs / 10)));

interface PendingPath {
  /** `Look.key` at the last look ('' before the first). */
  key: string;
  /** When the path last changed, as far as we know (its last event, or its mtime): stable once this is `stableMs` old. */
  since: number;
  /** When it was last looked at (-Infinity before the first look: any mtime is then after it). */
  lookedAt: number;
}

export interface StabilityOptions {
  stableMs: number;
  pollMs: number;
  /** Keep a path that is gone (it is synced as a deletion); else it is dropped. */
  keepGone: boolean;
}

/**
 * Which pending paths are stable: size, mtime and inode unchanged for `stableMs`. Only pending
 * paths are looked at, never the tree; each once per `pollMs`, or sooner when one is due to become
 * stable. Stable paths leave, reported to `onStable`; folders and other non-files are dropped
 * (a folder is never synced as a whole: it may hold files still being written).
 */
export class StabilityTracker {
  private readonly pending = new Map<string, PendingPath>();
  /** The source's real path; `null` while it is missing: nothing is looked at then. */
  private root: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private polling = false;
  private closed = false;

  constructor(
    private readonly options: StabilityOptions,
    private readonly onStable: (rels: string[]) => void,
    private readonly onError: (err: unknown) => void,
    private readonly look: (path: string) => Promise<Look> = lookAt,
  ) {}

  get paths(): string[] {
    return [...this.pending.keys()];
  }

  has(rel: string): boolean {
    return this.pending.has(rel);
  }

  /** Forgets every pending path; from now on paths are looked at under `root`. */
  reset(root: string | null): void {
    this.pending.clear();
    this.root = root;
  }

  /** `rel` changed: its stability clock starts again. */
  touch(rel: string): void {
    const p = this.pending.get(rel);
    if (p) p.since = Date.now();
    else this.pending.set(rel, { key: '', since: Date.now(), lookedAt: -Infinity });
    this.schedule();
  }

  /** `rel` found by a listing: pending unless it is already (its clock left as it is). */
  track(rel: string): void {
    if (this.pending.has(rel)) return;
    this.pending.set(rel, { key: '', since: Date.now(), lookedAt: -Infinity });
    this.schedule();
  }

  /** Every pending path, taken now whether stable or not (`flush()`). */
  takeAll(): string[] {
    const rels = this.paths;
    this.pending.clear();
    return rels;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pending.clear();
  }

  private schedule(): void {
    if (this.timer || this.polling || this.closed || this.pending.size === 0) return;
    // Every `pollMs`, or sooner when a path that was looked at becomes stable: no wait for the next tick.
    let wait = this.options.pollMs;
    const now = Date.now();
    for (const p of this.pending.values()) if (p.key !== '') wait = Math.min(wait, p.since + this.options.stableMs - now);
    this.timer = setTimeout(() => void this.poll(), Math.max(1, Math.ceil(wait))).unref();
  }

  private async poll(): Promise<void> {
    this.timer = null;
    const root = this.root;
    if (this.closed || root === null) return;
    this.polling = true;
    const stable: string[] = [];
    try {
      await Promise.all([...this.pending].map(async ([rel, p]) => {
        const look = await this.look(join(root, rel));
        if (this.pending.get(rel) === p && this.settle(rel, p, look)) stable.push(rel);
      }));
    } catch (err) {
      this.onError(err);
    } finally {
      this.polling = false;
    }
    this.schedule();
    // (One touched again while the others were looked at is pending again: not stable.)
    const rels = stable.filter((rel) => !this.pending.has(rel));
    if (rels.length > 0) this.onStable(rels);
  }

  /** Updates `p` with what a look found; `true` when it is stable now. A path that needs no sync is dropped. */
  private settle(rel: string, p: PendingPath, look: Look): boolean {
    const now = Date.now();
    const previousLook = p.lookedAt;
    p.lookedAt = now;
    if (look.key === 'dir' || look.key === 'other' || (look.key === 'gone' && !this.options.keepGone)) {
      this.pending.delete(rel);
      return false;
    }
    if (look.key !== p.key) {
      p.key = look.key;
      p.since = changedAt(look.mtimeMs, p.since, previousLook, now);
    }
    if (now - p.since < this.options.stableMs) return false;
    this.pending.delete(rel);
    return true;
  }
}
