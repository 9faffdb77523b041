/**
 * Bounded concurrency for requests to a bucket: they wait on the network, so many go at once, but
 * never more than the run's `concurrency`. A pool of our own (20 lines) rather than a dependency:
 * the library's runtime dependencies are kept to what it cannot do itself.
 */

/** Runs tasks, at most `limit` at a time. Tasks must not reject (they report their own failures). */
export class Pool {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  /** Starts `task` once a slot is free; resolves when it has started (not when it ends). */
  async add(task: () => Promise<void>): Promise<void> {
    while (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running++;
    void task().finally(() => {
      this.running--;
      this.waiting.shift()?.();
    });
  }

  /** Resolves once every task started has ended. */
  async drain(): Promise<void> {
    while (this.running > 0) await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
}

/** `fn` of each item, at most `limit` at a time, results in the items' order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Asks for the next item of `it` as soon as one is taken: a bucket's next page is on its way while this one is compared. */
export async function* prefetch<T>(it: AsyncIterator<T> | AsyncIterable<T>): AsyncGenerator<T> {
  const iter = Symbol.asyncIterator in it ? it[Symbol.asyncIterator]() : it;
  let pending = iter.next();
  try {
    for (;;) {
      const r = await pending;
      if (r.done === true) return;
      pending = iter.next();
      yield r.value;
    }
  } finally {
    // A consumer that stops early: the page in flight is awaited (its rejection swallowed) and the listing closed.
    await pending.catch(() => undefined);
    await iter.return?.();
  }
}
