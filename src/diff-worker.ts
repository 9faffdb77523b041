// Entry of the worker thread that compares a share of the folders of a large tree (see diff.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { diffDirs, emptyDiff } from './diff.js';
import type { WorkerData } from './threads.js';

const { source, dest, items, opts } = workerData as WorkerData;
const diff = emptyDiff();
void diffDirs(source, dest, items, opts, diff).then(() => parentPort!.postMessage(diff));
