/**
 * What a cleanup would remove, decided from the listings alone (each candidate is checked again at
 * the moment of its deletion): stale temp files of ours first (garbage whatever the cap), then
 * orphans (or, with `orphansOnly: false`, every file) older than the cutoff; each group sorted.
 */
import type { Listing } from '../engine/walk.js';

/** `temp`: a stale temp file of ours; `orphan`: its source is gone; `old`: old enough (`orphansOnly: false`). */
export type Kind = 'temp' | 'orphan' | 'old';

export interface Candidate {
  rel: string;
  kind: Kind;
}

export interface PlanInput {
  dest: Listing;
  /** Orphan mode: whether the source has `rel`, or cannot tell (an unreadable folder above it). Absent: every old file goes. */
  wanted: ((rel: string) => boolean) | null;
  /** A file whose mtime is before this is old enough to go. */
  cutoffMs: number;
  /** A temp file of ours whose mtime is before this was left by an interrupted sync. */
  tempCutoffMs: number;
}

/** The candidates in removal order, and how many files were looked at and kept. */
export function planCleanup({ dest, wanted, cutoffMs, tempCutoffMs }: PlanInput): { candidates: Candidate[]; kept: number } {
  const temps: Candidate[] = [];
  const files: Candidate[] = [];
  let kept = 0;
  for (const [rel, info] of dest.temps) {
    if (info.mtimeMs < tempCutoffMs) temps.push({ rel, kind: 'temp' });
    else kept++;
  }
  const kind: Kind = wanted === null ? 'old' : 'orphan';
  for (const [rel, info] of dest.files) {
    if (wanted?.(rel) === true || info.mtimeMs >= cutoffMs) kept++;
    else files.push({ rel, kind });
  }
  const byPath = (a: Candidate, b: Candidate) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0);
  return { candidates: [...temps.sort(byPath), ...files.sort(byPath)], kept };
}
