import type { Action, CopyJob } from './plan-types.js';
import type { PublishOutcome } from './publish.js';
import type { Removal } from '../shared/delete-guard.js';

/**
 * What the executor writes to: a local folder now (`LocalDest`); a bucket is a second module with
 * the same methods. Every method is one action of the plan; folders' final modes and the removal
 * of emptied folders wait for `finish`, after every file is in place.
 */
export interface Destination {
  /** Makes the folder (with `replaceFile`: the file in its way goes first). Returns the file removed, if any. */
  makeDir(action: Extract<Action, { type: 'mkdir' }>): string | null;
  /** Notes a folder whose mode is set at the end (`dirmode`), or that is opened for writing when first written into (`open`). */
  noteDir(action: Extract<Action, { type: 'dirmode' | 'open' }>): void;
  setFileMode(rel: string, mode: number): void;
  /** Removes a file whose source is gone, through the delete guard. */
  remove(rel: string): Removal;
  /** Notes a folder only dest has: removed in `finish` if it is empty then. */
  notePrune(rel: string): void;
  /**
   * Publishes the files, calling `done` for each (in any order). Resolves when it can take more;
   * some may still be in flight until `drain`. Takes `jobs` over: each slot is emptied once taken.
   */
  publish(jobs: CopyJob[], done: (job: CopyJob, outcome: PublishOutcome, removed?: string[]) => void): Promise<void>;
  /** Resolves once every file handed to `publish` is done. */
  drain(): Promise<void>;
  /** Removes temp files of processes that died mid-copy; returns what it removed. */
  removeDeadTemps(rels: readonly string[]): Array<{ rel: string; pid: number }>;
  /** Removes the source's temp files (relative to source) of processes that died mid-write (an upload); returns what it removed. */
  removeDeadSourceTemps(rels: readonly string[]): Array<{ rel: string; pid: number }>;
  /** Prunes the noted folders that are empty, deepest first, then sets the noted folder modes. Returns the folders removed. */
  finish(fail: (rel: string, err: unknown) => void): string[];
}
