/**
 * What the planner hands the executor: plain data (it crosses to the helper thread and back), one
 * way only. The planner compares source and dest and yields `Findings` in batches; the executor
 * does them and never calls back into the planner.
 */
import type { SyncErrorEntry } from '../shared/options.js';

/** The quick-check view of a file: what the comparison saw, and what a copy gives the new file. */
export interface FileInfo {
  size: number;
  mtimeMs: number;
  atimeMs: number;
  /** Permission bits (`& 0o7777`). */
  mode: number;
  ino: number;
  dev: number;
}

/** A folder still to compare, and which sides have it. */
export interface DirItem {
  rel: string;
  inSrc: boolean;
  inDst: boolean;
}

/** A file to publish from source to dest, as the comparison saw it. */
export interface CopyJob {
  rel: string;
  src: FileInfo;
  /** Dest had an older version (reported as `updated`). */
  update: boolean;
  /** Dest has a folder under this name (the source swapped it for a file): removed first, with `delete`. */
  replaceDir?: boolean;
}

/**
 * One thing to do in dest. Folders made by `mkdir` are writable while the run fills them; every
 * folder's final mode is set at the end (`dirmode`, `open`), after it is filled, as rsync does.
 */
export type Action =
  /** A source folder dest lacks (`replaceFile`: dest has a file there, removed first, with `delete`). */
  | { type: 'mkdir'; rel: string; mode: number; replaceFile: boolean }
  /** An existing dest folder we cannot write into: opened (u+wx) before the first write into it, `mode` at the end. */
  | { type: 'open'; rel: string; mode: number; have: number }
  /** A dest folder whose mode is not the source's (or `dirMode`): set at the end. */
  | { type: 'dirmode'; rel: string; mode: number }
  /** An unchanged dest file whose mode is not the source's (or `fileMode`). */
  | { type: 'chmod'; rel: string; mode: number }
  /** A dest file whose source is gone (or is no longer something the sync takes), with `delete`. */
  | { type: 'delete'; rel: string }
  /** A folder only dest has, with `delete`: removed at the end if its files went. */
  | { type: 'prune'; rel: string }
  | { type: 'copy'; job: CopyJob };

/** What a comparison found: a batch of actions plus what the report needs. */
export interface Findings {
  actions: Action[];
  unchanged: number;
  /** Targeted entries handled without an action: gone without `delete`, not something the sync takes. */
  skipped: number;
  /** Source files left out by the extension filter. */
  filtered: number;
  errors: SyncErrorEntry[];
  /** Symlinks in source not taken as files, and why (logged). */
  skippedLinks: Array<{ rel: string; reason: string }>;
  /** Files that differ but were modified after `newerThan`: left for later (the watcher's reconcile). */
  young: string[];
  /** Our temp files found in dest (a dead process's are removed). */
  temps: string[];
  /** Our temp files found in source (a full run only): an upload killed mid-write left them; a dead process's are removed. */
  sourceTemps: string[];
}

/** One folder's comparison: its findings and the folders below it still to compare. */
export interface FolderResult extends Findings {
  children: DirItem[];
}

export function emptyFindings(): Findings {
  return { actions: [], unchanged: 0, skipped: 0, filtered: 0, errors: [], skippedLinks: [], young: [], temps: [], sourceTemps: [] };
}

/** Appends `from` to `into` (item by item: a large list would overflow `push(...)`). */
export function mergeFindings(into: Findings, from: Findings): void {
  into.unchanged += from.unchanged;
  into.skipped += from.skipped;
  into.filtered += from.filtered;
  for (const a of from.actions) into.actions.push(a);
  for (const e of from.errors) into.errors.push(e);
  for (const s of from.skippedLinks) into.skippedLinks.push(s);
  for (const y of from.young) into.young.push(y);
  for (const t of from.temps) into.temps.push(t);
  for (const t of from.sourceTemps) into.sourceTemps.push(t);
}

export function findingsSize(f: Findings): number {
  return f.actions.length + f.errors.length + f.skippedLinks.length + f.young.length + f.temps.length + f.sourceTemps.length;
}

/** What a comparison needs: plain data, so the helper thread gets the same. */
export interface CompareOptions {
  source: string;
  dest: string;
  /** The source's real path: a symlink is taken as a file only when its target is a file inside it. */
  sourceReal: string;
  extensions: ReadonlySet<string> | null;
  delete: boolean;
  /** Modes dest must have: `null` follows the source. `fileMode` is null for hard links (one inode). */
  fileMode: number | null;
  dirMode: number | null;
  /** Files modified after this (epoch ms) are left out as `young`; `null`: copy all. */
  newerThan: number | null;
  /** Two mtimes within this many ms are the same time: dest's real granularity (at least 1 ms). */
  mtimeWindowMs: number;
  /** Folders we cannot write into are opened during the run (a non-root process: permission bits apply). */
  openDirs: boolean;
}
