/**
 * Reads an upload's bytes into fixed part buffers, enforcing `maxBytes` and the abort signal as
 * the bytes arrive: nothing past the limit is read, and an abort does not wait for the next chunk.
 */
import { UploadSyncError } from '../shared/errors.js';

export class PartSource {
  private readonly it: AsyncIterator<Uint8Array>;
  private pending: Uint8Array | null = null;
  private ended = false;
  /** Bytes read so far. */
  total = 0;

  constructor(
    body: AsyncIterable<Uint8Array>,
    private readonly maxBytes: number,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.it = body[Symbol.asyncIterator]();
  }

  /** True once the body is exhausted and every byte was handed out. */
  get done(): boolean {
    return this.ended && this.pending === null;
  }

  /**
   * Copies bytes into `buf` until it is full or the body ends.
   * @returns the number of bytes written into `buf`.
   * @throws UploadSyncError `ERR_TOO_LARGE` past `maxBytes`, `ERR_ABORTED` when the signal fires.
   */
  async fill(buf: Buffer): Promise<number> {
    let n = 0;
    while (n < buf.length) {
      if (this.pending === null) {
        if (this.ended) break;
        const r = await this.next();
        if (r.done === true) {
          this.ended = true;
          break;
        }
        const chunk = r.value;
        if (chunk.byteLength === 0) continue;
        this.total += chunk.byteLength;
        if (this.total > this.maxBytes) {
          throw new UploadSyncError('ERR_TOO_LARGE', `The upload is over the limit of ${this.maxBytes} bytes`);
        }
        this.pending = chunk;
      }
      const take = Math.min(buf.length - n, this.pending.byteLength);
      buf.set(take === this.pending.byteLength ? this.pending : this.pending.subarray(0, take), n);
      n += take;
      this.pending = take === this.pending.byteLength ? null : this.pending.subarray(take);
    }
    return n;
  }

  /**
   * Ends the body early (after an error or an abort): a stream is destroyed, its file closed. Not
   * awaited: a generator stalled inside its body would only see the request once it moves again.
   */
  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.pending = null;
    this.it.return?.()?.catch(() => undefined);
  }

  /** The next chunk, or `ERR_ABORTED` as soon as the signal fires (a stalled body must not hold the upload). */
  private next(): Promise<IteratorResult<Uint8Array>> {
    const signal = this.signal;
    if (signal === undefined) return this.it.next();
    if (signal.aborted) return Promise.reject(aborted(signal));
    return new Promise((resolve, reject) => {
      const onAbort = (): void => reject(aborted(signal));
      signal.addEventListener('abort', onAbort, { once: true });
      this.it.next().then(
        (r) => {
          signal.removeEventListener('abort', onAbort);
          resolve(r);
        },
        (err: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      );
    });
  }
}

export function aborted(signal: AbortSignal): UploadSyncError {
  return new UploadSyncError('ERR_ABORTED', 'The upload was aborted', { cause: signal.reason });
}
