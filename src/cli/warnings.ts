import { lstatSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import type { PathsConfig } from '../config/config.js';
import { toPosix } from '../shared/filter.js';
import { oneLine } from '../shared/log.js';
import type { SyncResult } from '../shared/options.js';
import { showPath } from './shared.js';

/** `--strict`: warnings make the exit code 1 (sync, check). */
export const STRICT_HELP = `  --strict         exit 1 on a warning: a --file that is not in the source, an extension
                   filter (UPLOAD_SYNC_EXTENSIONS) that leaves out every file`;

/** `--force` of sync and cleanup. */
export const FORCE_HELP = `  --force          run even when DISABLE_UPLOAD_SYNC=true (see below)`;

/** What `sync` and `cleanup --help` say of the environment's enable rule. */
export const DISABLED_HELP = `DISABLE_UPLOAD_SYNC=true ("off everywhere") stops it too, so a build or a cron job that runs it
does nothing: it says so on stderr and exits 0; --force runs it anyway. NODE_ENV and
ENABLE_UPLOAD_SYNC do not matter here: a command run by hand or by a script is explicit.`;

/** The one stderr line of a run that the environment turned off. */
export function disabledLine(what: string): string {
  return `upload-sync: ${what} not run: DISABLE_UPLOAD_SYNC=true turns it off (pass --force to run it anyway)\n`;
}

const files = (n: number) => `${n} file${n === 1 ? '' : 's'}`;

/**
 * What a sync did that is almost surely not what was meant, though nothing failed: a `--file`
 * that is in neither the source nor the run's deletions (a typo), and an extension filter that
 * left out every file it saw (`UPLOAD_SYNC_EXTENSIONS=audoi`). One line each, for stderr.
 */
export function syncWarnings(config: PathsConfig, result: SyncResult, targets: readonly string[] | null): string[] {
  const out: string[] = [];
  if (result.status === 'failed') return out; // the run's own error says what is wrong (the source missing, say)
  for (const entry of targets ?? []) {
    const abs = isAbsolute(entry) ? resolve(entry) : resolve(config.source, entry);
    const rel = toPosix(relative(config.source, abs));
    if (rel.startsWith('..') || isAbsolute(rel)) continue; // outside the source: an ERR_OUTSIDE error already
    if (lstatSync(abs, { throwIfNoEntry: false }) !== undefined || result.deleted.includes(rel)) continue;
    out.push(`warning: --file ${oneLine(entry)}: no such file in ${showPath(config.source)} (paths are relative to the source folder); nothing synced for it`);
  }
  const kept = result.copied.length + result.updated.length + result.unchanged;
  if (config.extensions !== null && result.filtered > 0 && kept === 0) {
    out.push(
      `warning: the extension filter left out every file (${files(result.filtered)}), so nothing was synced: ` +
        `UPLOAD_SYNC_EXTENSIONS allows only ${[...config.extensions].join(',')}; set it to "*", "audio" or a list such as "mp3,flac"`,
    );
  }
  return out;
}
