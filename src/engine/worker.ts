// Entry of a run's helper thread (see threads.ts): compares shares of a large tree (diff.ts), then
// publishes shares of the copies (publish.ts), as rsync's receiver writes while its sender reads.
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { clearDiff, diffDirs, emptyDiff, type Diff, type DirItem } from './diff.js';
import { SourceGone, publish } from './publish.js';
import type { CopyJob, CopyOutcome, ShareMessage, WorkerData, WorkerMessage } from './threads.js';

const { source, dest, opts, copy } = workerData as WorkerData;
const port = parentPort!;
const send = (message: WorkerMessage) => port.postMessage(message);

/** Entries found before a part goes to the main thread: small messages, no second copy of the diff here. */
const PART = 1000;
/** Copy outcomes sent together. */
const OUTCOMES = 32;

const size = (d: Diff) => d.copies.length + d.deletes.length + d.modeFixes.length + d.dirs.length + d.destOnlyDirs.length + d.temps.length + d.young.length + d.skippedLinks.length + d.errors.length;

async function compare(items: DirItem[]): Promise<void> {
  const diff = emptyDiff();
  const flush = () => {
    if (size(diff) === 0 && diff.unchanged === 0) return;
    send({ type: 'part', diff }); // cloned here and now: the diff can be emptied for the next part
    clearDiff(diff);
  };
  await diffDirs(source, dest, items, opts, diff, { betweenFolders: () => size(diff) >= PART && flush() });
  flush();
}

async function publishAll(jobs: CopyJob[]): Promise<void> {
  let outcomes: CopyOutcome[] = [];
  for (const { rel, src } of jobs) {
    let outcome: CopyOutcome = 'copied';
    try {
      await publish(join(source, rel), join(dest, rel), { strategy: copy.strategy, fileMode: copy.fileMode, expected: src });
    } catch (err) {
      // Failures are not reported from here: the main thread does the file again and reports what fails then.
      outcome = err instanceof SourceGone ? 'gone' : 'failed';
    }
    outcomes.push(outcome);
    if (outcomes.length >= OUTCOMES) {
      send({ type: 'copied', outcomes });
      outcomes = [];
    }
  }
  if (outcomes.length > 0) send({ type: 'copied', outcomes });
}

port.on('message', (message: ShareMessage) => {
  const work = message.type === 'compare' ? compare(message.items) : publishAll(message.jobs);
  // A bug here must not leave the main thread waiting: thrown, it ends this thread, and the main thread does the share.
  void work.then(() => send({ type: 'done' }), (err: unknown) => setImmediate(() => {
    throw err;
  }));
});
send({ type: 'ready' });
