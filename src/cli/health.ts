/**
 * `upload-sync check`'s verdict for monitors: whether the mirror is behind the source, and whether
 * temp files of processes that died are left in either folder. `--strict` exits 1 when it is not
 * healthy; `--json` carries it as `health`.
 */
import { lstatSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { PathsConfig } from '../config/config.js';
import { deadTempOwner } from '../engine/publish.js';
import { isTempName, toPosix } from '../shared/filter.js';
import type { SyncResult } from '../shared/options.js';

/**
 * A file changed in the source less than this long ago is on its way (an upload's own sync, the
 * watcher waiting for it to be stable), not a mirror left behind: a health check run at that
 * moment must not fail.
 */
export const HEALTH_GRACE_MS = 60_000;

/** What `check --json` prints as `health`. */
export interface Health {
  /** `false` when any of the below is non-zero, or there are warnings. */
  ok: boolean;
  /** Files a sync would copy or update, changed in the source more than `HEALTH_GRACE_MS` ago. */
  behind: number;
  /** Files a sync would delete from the mirror (with `--delete` / `UPLOAD_SYNC_DELETE` only). */
  toDelete: number;
  /** Temp files (`.upload-sync-*.tmp`) whose process is gone: `where` is `dest` or `source`, `path` relative to it. */
  deadTemps: Array<{ where: 'source' | 'dest'; path: string; pid: number }>;
  /** The warnings `--strict` fails on (a `--file` not in the source, a filter that leaves out every file). */
  warnings: string[];
}

export function healthOf(config: PathsConfig, result: SyncResult, warnings: string[], now = Date.now()): Health {
  let behind = 0;
  for (const rel of [...result.copied, ...result.updated]) {
    const st = lstatSync(join(config.source, rel), { throwIfNoEntry: false });
    if (st === undefined || now - st.mtimeMs >= HEALTH_GRACE_MS) behind++;
  }
  const deadTemps = [...deadTempsIn(config.dest, 'dest'), ...deadTempsIn(config.source, 'source')];
  const toDelete = result.deleted.length;
  return { ok: behind === 0 && toDelete === 0 && deadTemps.length === 0 && warnings.length === 0, behind, toDelete, deadTemps, warnings };
}

/** Our temp files under `root` whose writer is dead. A listing without a stat per file: only temp names are looked at. */
function deadTempsIn(root: string, where: 'source' | 'dest'): Health['deadTemps'] {
  let entries;
  try {
    entries = readdirSync(root, { withFileTypes: true, recursive: true });
  } catch {
    return []; // a folder missing or unreadable: the dry run's own errors say so
  }
  const out: Health['deadTemps'] = [];
  for (const entry of entries) {
    if (!isTempName(entry.name) || !entry.isFile()) continue;
    const pid = deadTempOwner(entry.name);
    if (pid !== null) out.push({ where, path: toPosix(relative(root, join(entry.parentPath, entry.name))), pid });
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** One stderr line for a health that is not ok (the warnings have their own lines). */
export function healthLine(h: Health): string {
  const files = (n: number) => `${n} file${n === 1 ? '' : 's'}`;
  const parts = [
    h.behind > 0 ? `${files(h.behind)} to copy (changed over ${HEALTH_GRACE_MS / 1000} s ago)` : '',
    h.toDelete > 0 ? `${files(h.toDelete)} to delete` : '',
    h.deadTemps.length > 0
      ? `${h.deadTemps.length} temp file${h.deadTemps.length === 1 ? '' : 's'} of dead processes (first: ${h.deadTemps[0]!.where} ${h.deadTemps[0]!.path}, pid ${h.deadTemps[0]!.pid})`
      : '',
    h.warnings.length > 0 ? `${h.warnings.length} warning${h.warnings.length === 1 ? '' : 's'}` : '',
  ].filter(Boolean);
  const fix = [
    h.behind + h.toDelete > 0 ? "run 'upload-sync sync' (and see why the watcher or the app did not: pm2 logs upload-watcher, the log file)" : '',
    h.deadTemps.length > 0 ? "'upload-sync sync' or 'upload-sync cleanup' removes the temp files" : '',
  ].filter(Boolean);
  return `not healthy: ${parts.join(', ')}${fix.length > 0 ? `; to fix: ${fix.join('; ')}` : ''}`;
}
