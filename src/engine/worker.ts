// Entry of a run's helper thread (see helper.ts): compares the folders it is given (compare-dir.ts)
// or publishes the files it is given (publish.ts), and answers with the result, one task at a time.
import { workerData } from 'node:worker_threads';
import { compareDir } from './compare-dir.js';
import type { HelperMessage, Task, WorkerData } from './helper.js';
import { publishJob, publishJobSync, type PublishOutcome } from './publish.js';

const data = workerData as WorkerData;
const { port } = data;
const send = (message: HelperMessage) => port.postMessage(message);

async function publishAll(jobs: Extract<Task, { type: 'publish' }>['jobs']): Promise<PublishOutcome[]> {
  const outcomes: PublishOutcome[] = [];
  const { source, dest } = data.compare;
  for (const job of jobs) outcomes.push(publishJobSync(source, dest, job, data.publish) ?? (await publishJob(source, dest, job, data.publish)));
  return outcomes;
}

port.on('message', (task: Task) => {
  const work = task.type === 'compare' ? Promise.resolve(task.dirs.map((item) => compareDir(data.compare, item))) : publishAll(task.jobs);
  // A bug here must not leave the main thread waiting: thrown, it ends this thread, and the main thread does the task.
  void work.then((answer) => send({ type: 'answer', answer }), (err: unknown) => setImmediate(() => {
    throw err;
  }));
});
send({ type: 'ready' });
