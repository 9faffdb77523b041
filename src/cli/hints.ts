import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { quotedPaths, userName, within } from '../shared/advice.js';
import { oneLine } from '../shared/log.js';

/** What a hint needs to know of the run's configuration. */
export interface HintPaths {
  source: string;
  dest: string;
  lockDir: string;
}

interface ErrorEntry {
  path: string;
  code: string;
  message: string;
}

const PERMISSION = new Set(['EACCES', 'EPERM']);

/** What a hint is about: the mirror not writable, the source not readable, the lock folder, a full disk. */
export type HintKind = 'dest' | 'source' | 'lock' | 'full' | 'readonly';
export interface Hint {
  kind: HintKind;
  text: string;
}

/** `user nobody, uid 65534` (the uid alone when it has no name). */
function whoAmI(): string {
  const uid = process.getuid?.();
  try {
    const { username } = userInfo();
    return uid === undefined ? `user ${username}` : `user ${username}, uid ${uid}`;
  } catch {
    return uid === undefined ? 'this user' : `uid ${uid}`;
  }
}

const readable = (path: string, folder: boolean) =>
  access(path, folder ? constants.R_OK | constants.X_OK : constants.R_OK).then(
    () => true,
    (err: NodeJS.ErrnoException) => !PERMISSION.has(err.code ?? ''),
  );

/** The nearest folder of `path` (itself included) that exists. */
async function existingAncestor(path: string): Promise<string> {
  for (let p = path; ; p = dirname(p)) {
    if (await stat(p).then(() => true, () => false)) return p;
    if (dirname(p) === p) return p;
  }
}

/**
 * What to do about a run's errors, one line per kind the user can fix: a dest that cannot be
 * written and a source that cannot be read (the old scripts' chown/chmod advice), a lock folder
 * another user made, a full disk. Empty when there is nothing to add to the errors themselves.
 */
export async function hintsFor(paths: HintPaths, errors: readonly ErrorEntry[]): Promise<Hint[]> {
  const t = await tally(paths, errors);
  const who = whoAmI();
  const hints: Hint[] = [];
  if (t.destDenied > 0) hints.push(await destHint(paths.dest, who));
  if (t.unreadable.length > 0) hints.push(sourceHint(paths.source, t.unreadable, who));
  if (t.lockDenied) hints.push(await lockHint(paths.lockDir, who));
  if (t.full > 0) {
    hints.push({
      kind: 'full',
      text:
        `to fix: the filesystem is full (${t.full === 1 ? '1 file' : `${t.full} files`} not written). Free space there (df -h ${paths.dest}), then sync again: ` +
        'nothing half-written was left, and the files already in place are intact.',
    });
  }
  if (t.readOnly > 0) {
    hints.push({
      kind: 'readonly',
      text:
        `to fix: the filesystem of ${paths.dest} is read-only (${t.readOnly === 1 ? '1 path' : `${t.readOnly} paths`} not written; a disk error can make Linux remount it so). ` +
        'Check dmesg, remount it read-write (sudo mount -o remount,rw <mount point>), then sync again: nothing half-written was left.',
    });
  }
  return hints;
}

/** What the errors are about: which side a permission error is on (by the paths its message quotes), and how many were a full or read-only disk. */
async function tally({ source, dest, lockDir }: HintPaths, errors: readonly ErrorEntry[]) {
  const t = { destDenied: 0, lockDenied: false, unreadable: [] as string[], full: 0, readOnly: 0 };
  for (const e of errors) {
    if (e.code === 'ENOSPC' && !e.message.includes('max_user_watches')) t.full++;
    if (e.code === 'EROFS') t.readOnly++;
    if (!PERMISSION.has(e.code)) continue;
    const quoted = quotedPaths(e.message);
    if (quoted.some((p) => within(p, lockDir))) {
      t.lockDenied = true;
    } else if (e.path !== '' && !(await readable(join(source, e.path), /scandir|opendir|Cannot read folder/.test(e.message)))) {
      t.unreadable.push(e.path);
    } else if (quoted.some((p) => within(p, dest) || within(dest, p))) {
      t.destDenied++; // dest, a file or folder in it, or a parent it had to be created in
    } else if (quoted.some((p) => within(p, source))) {
      t.unreadable.push(e.path || quoted[0]!);
    }
  }
  return t;
}

async function destHint(dest: string, who: string): Promise<Hint> {
  const name = userName();
  const top = await existingAncestor(dest);
  const owner = await stat(top).then((st) => ` (${top === dest ? 'it is' : `${top} is`} owned by uid ${st.uid}, mode ${(st.mode & 0o777).toString(8)})`, () => '');
  const give = top === dest ? `sudo chown -R ${name} ${dest}` : `sudo install -d -o ${name} ${dest}`;
  return {
    kind: 'dest',
    text:
      `to fix: this process (${who}) cannot write into ${dest}${owner}. Run the sync, the watcher and the cleanup as the user that owns the mirror (usually the one PM2 runs the app as), ` +
      `or give this user the mirror: ${give}; or share a group: sudo chgrp -R <group> ${top} && sudo chmod -R g+rwX ${top}, and set UPLOAD_SYNC_DIR_MODE=775 UPLOAD_SYNC_FILE_MODE=664 so new files stay group-writable.`,
  };
}

function sourceHint(source: string, unreadable: readonly string[], who: string): Hint {
  return {
    kind: 'source',
    text:
      `to fix: this process (${who}) cannot read ${unreadable.length === 1 ? oneLine(unreadable[0]!) : `${unreadable.length} paths (first: ${oneLine(unreadable[0]!)})`} in ${source}. ` +
      `Make the uploads readable to it (sudo chmod -R a+rX ${source}, or a shared group with g+rX), or run the sync as the user that writes the uploads.`,
  };
}

async function lockHint(lockDir: string, who: string): Promise<Hint> {
  const top = await existingAncestor(lockDir);
  const st = await stat(top).catch(() => null);
  const sticky = st !== null && (st.mode & 0o1000) !== 0 && top === lockDir;
  const owner = st === null ? '' : ` (${top === lockDir ? 'it is' : `${top} is`} owned by uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8)})`;
  return {
    kind: 'lock',
    text:
      `to fix: this process (${who}) cannot ${sticky ? 'take over or remove a lock' : 'create its lock'} in ${lockDir}${owner}. ` +
      'Every process that syncs this dest, whatever its user, must be able to create and remove entries there' +
      (sticky ? ', and the sticky bit stops a user from removing the lock another user\'s crashed run left' : '') +
      `: ${top === lockDir ? `sudo chmod 0777 ${lockDir}` : `sudo install -d -m 0777 ${lockDir}`}, or a shared group (sudo chgrp <group> ${lockDir} && sudo chmod 2770 ${lockDir}); ` +
      'or set UPLOAD_SYNC_LOCK_DIR, the same in every such process, to a folder they can all write (e.g. sudo install -d -m 2770 -g <group> /var/lib/upload-sync).',
  };
}

/** Prints the hints for a run's errors on stderr (each kind once when `seen` is given: a long-running watcher). */
export async function printHints(paths: HintPaths, errors: readonly ErrorEntry[], seen?: Set<HintKind>): Promise<void> {
  for (const h of await hintsFor(paths, errors).catch(() => [])) {
    if (seen?.has(h.kind)) continue;
    seen?.add(h.kind);
    process.stderr.write(`upload-sync: ${h.text}\n`);
  }
}
