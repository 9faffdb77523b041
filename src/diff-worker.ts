// Entry of the worker thread that takes shares of a large tree comparison (see diff.ts, threads.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { clearDiff, diffDirs, emptyDiff, type Diff } from './diff.js';
import type { ShareMessage, WorkerData, WorkerMessage } from './threads.js';

const { source, dest, opts } = workerData as WorkerData;
const port = parentPort!;
const send = (message: WorkerMessage) => port.postMessage(message);

/** Entries found before a part goes to the main thread: small messages, no second copy of the diff here. */
const PART = 1000;

const size = (d: Diff) => d.copies.length + d.deletes.length + d.modeFixes.length + d.dirs.length + d.destOnlyDirs.length + d.temps.length + d.young.length + d.skippedLinks.length + d.errors.length;

port.on('message', ({ items }: ShareMessage) => {
  const diff = emptyDiff();
  const flush = () => {
    if (size(diff) === 0 && diff.unchanged === 0) return;
    send({ type: 'part', diff }); // cloned here and now: the diff can be emptied for the next part
    clearDiff(diff);
  };
  void diffDirs(source, dest, items, opts, diff, { betweenFolders: () => size(diff) >= PART && flush() }).then(() => {
    flush();
    send({ type: 'done' });
  });
});
send({ type: 'ready' });
