import { performance } from 'node:perf_hooks';
import { formatBytes } from '../shared/log.js';
import type { SyncProgress } from '../shared/options.js';

/** `12/40 files, 3.1 MB of 9.8 MB, 1.2 MB/s`. */
export function formatProgress(p: SyncProgress, elapsedMs: number): string {
  const rate = elapsedMs > 0 ? Math.round(p.bytesDone / (elapsedMs / 1000)) : 0;
  return `${p.filesDone}/${p.filesTotal} files, ${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)}, ${formatBytes(rate)}/s`;
}

/** Where the progress line is drawn: a TTY stream (`process.stderr`), or a fake one in tests. */
export interface ProgressStream {
  write(text: string): unknown;
  columns?: number;
}

export interface ProgressLine {
  /** The engine's `onProgress`. */
  update(progress: SyncProgress): void;
  /** Stops redrawing and erases the line. */
  done(): void;
}

/**
 * A progress line redrawn in place (`\r`) every `intervalMs`, once a run has lasted `delayMs`: a
 * quick sync draws nothing. The timer is unref'd, so it never keeps the process alive.
 */
export function createProgressLine(stream: ProgressStream, { delayMs = 500, intervalMs = 200 } = {}): ProgressLine {
  const started = performance.now();
  let latest: SyncProgress | null = null;
  let drawn = false;
  const draw = () => {
    const elapsed = performance.now() - started;
    if (latest === null || elapsed < delayMs) return;
    const width = stream.columns !== undefined && stream.columns > 1 ? stream.columns - 1 : Infinity;
    stream.write(`\r\x1b[K${formatProgress(latest, elapsed).slice(0, width)}`);
    drawn = true;
  };
  const timer = setInterval(draw, intervalMs);
  timer.unref();
  return {
    update(progress) {
      latest = progress;
    },
    done() {
      clearInterval(timer);
      if (drawn) stream.write('\r\x1b[K');
    },
  };
}
