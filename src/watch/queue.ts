/**
 * Runs jobs one at a time, in the order given: every sync of a watcher (batch, reconcile, flush)
 * goes through one queue, so no two of its runs overlap. A job that throws (a bug) is reported and
 * resolves with its fallback: nothing here rejects.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private running = 0;

  constructor(private readonly onError: (err: unknown) => void) {}

  /** A job is running now. */
  get busy(): boolean {
    return this.running > 0;
  }

  /** Resolves once every job added so far has ended. */
  async idle(): Promise<void> {
    await this.tail;
  }

  add<T>(job: () => Promise<T>, fallback: (err: unknown) => T): Promise<T> {
    const run = this.tail.then(async () => {
      this.running++;
      try {
        return await job();
      } catch (err) {
        this.onError(err);
        return fallback(err);
      } finally {
        this.running--;
      }
    });
    this.tail = run;
    return run;
  }
}
