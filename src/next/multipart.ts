/**
 * `saveMultipart`: the file parts of a multipart `Request` saved as they stream in, never the
 * whole body in memory (`request.formData()` holds it all, about 3x its size in RSS). The parser
 * is @fastify/busboy, loaded on the first call only: the route and `saveUpload` never load it.
 */
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { UploadSyncError, errorMessage } from '../shared/errors.js';
import type { SaveMultipartOptions, SavedMultipart, SavedPart } from '../shared/options.js';
import { checkType, prepareUpload, randomName, syncSaved, type UploadContext } from './save.js';
import { aborted, tooLarge } from './writer.js';
import { diskSink, storeSink, type Landed, type Sink } from './upload-sinks.js';

const DEFAULTS = { maxFiles: 10, maxFields: 100, maxFieldBytes: 64 * 1024 };

type BusboyModule = typeof import('@fastify/busboy');
let busboy: Promise<BusboyModule['Busboy']> | undefined;

/** @fastify/busboy on first use (CommonJS: its constructor is `Busboy` or the default export). */
function loadBusboy(): Promise<BusboyModule['Busboy']> {
  busboy ??= import('@fastify/busboy').then((m) => (m.Busboy ?? (m as unknown as { default: BusboyModule['Busboy'] }).default));
  return busboy;
}

/** What `saveMultipart` reads of a request: a web `Request` has all of it. */
export interface MultipartRequest {
  headers: Headers;
  body: ReadableStream<Uint8Array> | null;
  signal?: AbortSignal;
}

/**
 * Saves the file parts of a `multipart/form-data` request while its body streams in, with the
 * rules of `saveUpload` (random names from each part's file name, `allowedTypes`, the extension
 * filter, `folder`, the same temp file, fsync, then link). Every file is published only once the
 * whole body has arrived and parsed: a refused, aborted or malformed request leaves nothing, no
 * temp file and no file. Then one targeted sync of all the files (unless `sync: false`).
 *
 * With a store (option `store`, or `UPLOAD_SYNC_STORE`), each file streams into the bucket as its
 * part arrives (see the option `store` of `saveUpload`), under a random key no one knows yet; if the
 * request then fails, the objects it wrote are deleted, and an aborted multipart upload leaves
 * nothing. No sync runs.
 *
 * ```ts
 * // app/api/upload/route.ts
 * export async function POST(request: Request) {
 *   const { files } = await saveMultipart(request, { allowedTypes: 'audio', maxBytes: 200e6 });
 *   return Response.json({ url: files[0].url }, { status: 201 });
 * }
 * ```
 *
 * @throws UploadSyncError `ERR_TOO_LARGE` (413: `Content-Length` over `maxBytes`, before a byte
 *   is read; or the body went over as it arrived), `ERR_NOT_MULTIPART` (415), `ERR_MALFORMED`
 *   (400: a body the parser refuses, or one that ends early), `ERR_NO_FILE` (400), `ERR_LIMIT`
 *   (413: too many files or fields, a field too long), `ERR_TYPE` (415), `ERR_ABORTED` (the
 *   client went away, or `signal`), `ERR_EXISTS`, `ERR_OUTSIDE`, `ERR_CONFIG`, `ERR_STORE` (the
 *   bucket's own errors), or a filesystem error (`ENOSPC`, …).
 */
export async function saveMultipart(request: MultipartRequest, options: SaveMultipartOptions = {}): Promise<SavedMultipart> {
  const ctx = prepareUpload(options, 'saveMultipart');
  const limits = {
    maxFiles: checkCount(options.maxFiles, 'maxFiles', DEFAULTS.maxFiles, 1),
    maxFields: checkCount(options.maxFields, 'maxFields', DEFAULTS.maxFields, 0),
    maxFieldBytes: checkCount(options.maxFieldBytes, 'maxFieldBytes', DEFAULTS.maxFieldBytes, 0),
  };
  if (request === null || typeof request !== 'object' || typeof request.headers?.get !== 'function') {
    throw new UploadSyncError('ERR_CONFIG', 'Invalid argument `request` of saveMultipart: expected a web Request');
  }
  const contentType = request.headers.get('content-type') ?? '';
  if (!/^multipart\/form-data\s*;.*boundary=/i.test(contentType)) {
    throw new UploadSyncError('ERR_NOT_MULTIPART', `Expected a multipart/form-data request with a boundary, got Content-Type ${contentType === '' ? '(none)' : JSON.stringify(contentType)}`);
  }
  const declared = contentLength(request.headers.get('content-length'));
  // Refused before a byte is read: the client's declared size is enough.
  if (declared !== null && declared > ctx.maxBytes) throw tooLarge(ctx.maxBytes, declared);
  if (request.body === null) throw new UploadSyncError('ERR_NO_FILE', 'The request has no body: no file to save');

  const signals = [request.signal, options.signal].filter((s): s is AbortSignal => s instanceof AbortSignal);
  const external = signals.length === 0 ? undefined : signals.length === 1 ? signals[0] : AbortSignal.any(signals);
  if (external?.aborted) throw aborted(ctx.dir);

  const sink = ctx.config.store === null ? diskSink(ctx) : await storeSink(ctx, ctx.config.store);
  if (ctx.config.store === null) ctx.openFolder();
  const Busboy = await loadBusboy();
  const written = await new MultipartJob(ctx, sink, limits, external).run(request.body, contentType, Busboy);
  await sink.publish(written);

  const rels = written.map((w) => w.rel);
  const sync = rels.length === 0 ? null : await sink.settle(async () => (ctx.config.store !== null || options.sync === false ? null : syncSaved(ctx, rels)));
  const files: SavedPart[] = written.map((w) => ({
    name: w.rel, path: w.path, url: ctx.urlOf(w.rel), size: w.size, sync, field: w.field, originalName: w.originalName, ...(w.etag === undefined ? {} : { etag: w.etag }),
  }));
  return { files, fields: written.fields, sync };
}

interface PartWritten extends Landed {
  field: string;
  originalName: string | undefined;
}

/**
 * One request's parse: the body pumped into busboy by hand (bytes counted against `maxBytes`,
 * backpressure kept), each file part streamed into the sink (a temp file, or the bucket). The first
 * failure stops it all.
 */
class MultipartJob {
  private readonly stop = new AbortController();
  private failure: unknown = null;
  private readonly writes: Promise<PartWritten | null>[] = [];
  private readonly streams = new Set<Readable>();
  private readonly fields: Record<string, string> = Object.create(null) as Record<string, string>;
  /** A read of the body still pending when the job stopped: the body's drain takes it over. */
  private pendingRead: Promise<ReadResult> | null = null;
  private bodyDone = false;

  constructor(
    private readonly ctx: UploadContext,
    private readonly sink: Sink,
    private readonly limits: { maxFiles: number; maxFields: number; maxFieldBytes: number },
    private readonly external: AbortSignal | undefined,
  ) {}

  private fail(err: unknown): void {
    if (this.failure !== null) return;
    this.failure = err;
    this.stop.abort(err);
    // A part being written stops at once (its writer removes its temp file).
    for (const s of this.streams) s.destroy(err instanceof Error ? err : new Error(String(err)));
  }

  async run(body: ReadableStream<Uint8Array>, contentType: string, Busboy: BusboyModule['Busboy']): Promise<PartWritten[] & { fields: Record<string, string> }> {
    const onAbort = () => this.fail(aborted(this.ctx.dir));
    this.external?.addEventListener('abort', onAbort, { once: true });
    let parser: Writable | undefined;
    const reader = body.getReader();
    try {
      try {
        parser = new Busboy({
          headers: { 'content-type': contentType },
          limits: { files: this.limits.maxFiles, fields: this.limits.maxFields, fieldSize: this.limits.maxFieldBytes, parts: this.limits.maxFiles + this.limits.maxFields },
        });
      } catch (err) {
        throw malformed(err);
      }
      this.listen(parser);
      await this.pump(reader, parser);
    } catch (err) {
      this.fail(err);
    } finally {
      this.external?.removeEventListener('abort', onAbort);
      if (this.failure !== null) {
        parser?.destroy();
        if (!this.bodyDone) void finishBody(reader, this.pendingRead);
      }
    }
    // Every writer settles (each removes its own temp file on failure) before this returns.
    const results = await Promise.allSettled(this.writes);
    const written = results.flatMap((r) => (r.status === 'fulfilled' && r.value !== null ? [r.value] : []));
    if (this.failure === null) {
      const rejected = results.find((r) => r.status === 'rejected');
      if (rejected) this.failure = rejected.reason;
      else if (written.length === 0) this.failure = new UploadSyncError('ERR_NO_FILE', 'The request has no file part (an <input type="file"> with a file chosen)');
    }
    if (this.failure !== null) {
      await this.sink.discard(written);
      throw this.failure;
    }
    return Object.assign(written, { fields: this.fields });
  }

  private listen(parser: Writable): void {
    parser.on('file', (field: string, stream: Readable, filename: string | undefined, _encoding: string, mimeType: string) => {
      if (this.failure !== null) {
        stream.resume();
        return;
      }
      this.streams.add(stream);
      // The parser's own complaint (a part cut short) comes here first: it is the request's fault.
      stream.on('error', (err) => this.fail(malformed(err)));
      const write = this.savePart(field, stream, filename, mimeType).catch((err: unknown) => {
        this.fail(err);
        throw err;
      }).finally(() => this.streams.delete(stream));
      write.catch(() => undefined); // seen by run() through allSettled
      this.writes.push(write);
    });
    parser.on('field', (name: string, value: string, _nameTruncated: boolean, valueTruncated: boolean) => {
      if (valueTruncated) this.fail(limitError(`the field ${JSON.stringify(name)} is longer than \`maxFieldBytes\` (${this.limits.maxFieldBytes} bytes)`));
      else this.fields[name] = value;
    });
    parser.on('filesLimit', () => this.fail(limitError(`more than \`maxFiles\` (${this.limits.maxFiles}) files`)));
    parser.on('fieldsLimit', () => this.fail(limitError(`more than \`maxFields\` (${this.limits.maxFields}) fields`)));
    parser.on('partsLimit', () => this.fail(limitError(`more than ${this.limits.maxFiles + this.limits.maxFields} parts`)));
    parser.on('error', (err: unknown) => this.fail(malformed(err)));
  }

  private async savePart(field: string, stream: Readable, filename: string | undefined, mimeType: string): Promise<PartWritten> {
    const fileName = randomName(filename, mimeType === 'application/octet-stream' ? undefined : mimeType);
    checkType(fileName, this.ctx.config, this.ctx.allowed);
    const rel = this.ctx.relOf(fileName);
    const landed = await this.sink.write(stream, fileName, rel, this.stop.signal);
    return { ...landed, field, originalName: filename };
  }

  /** The body into the parser: counted, stopped at the first failure, written only as fast as the parser (and the disk) take it. */
  private async pump(reader: ReadableStreamDefaultReader<Uint8Array>, parser: Writable): Promise<void> {
    let received = 0;
    const finished = new Promise<void>((resolve) => parser.once('finish', resolve));
    for (;;) {
      if (this.failure !== null) return;
      const read = reader.read();
      read.catch(() => undefined); // raced below: a rejection after the stop is the drain's to see
      this.pendingRead = read;
      let next: ReadResult | typeof STOP;
      try {
        // A stop (a refused part, a limit, an abort) does not wait for a stalled client's next bytes.
        next = await untilStopped(read, this.stop.signal);
      } catch (err) {
        // The body stream failed: the client went away (a connection reset) or the server cut it.
        this.pendingRead = null;
        this.bodyDone = true;
        throw this.external?.aborted ? aborted(this.ctx.dir) : new UploadSyncError('ERR_ABORTED', `The request body ended with an error (${errorMessage(err)}); nothing was saved`, { cause: err });
      }
      if (next === STOP) return;
      this.pendingRead = null;
      if (next.done) {
        this.bodyDone = true;
        break;
      }
      received += next.value.byteLength;
      if (received > this.ctx.maxBytes) throw tooLarge(this.ctx.maxBytes);
      // (A parser error rejects this wait too; the loop then sees the failure.)
      if (!parser.write(next.value)) await once(parser, 'drain', { signal: this.stop.signal }).catch(() => undefined);
    }
    parser.end();
    await untilStopped(finished, this.stop.signal);
  }
}

const STOP = Symbol('stop');

/**
 * `promise`, or STOP as soon as `signal` aborts. Not `Promise.race` with one promise that stays
 * pending: each race adds a reaction to it that holds the race's result, so every chunk read of a
 * 2 GB body stayed reachable (+200 MB RSS for a 200 MB upload).
 */
function untilStopped<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | typeof STOP> {
  if (signal.aborted) return Promise.resolve(STOP);
  return new Promise((resolve, reject) => {
    const onStop = () => resolve(STOP);
    signal.addEventListener('abort', onStop, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onStop);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onStop);
        reject(err);
      },
    );
  });
}
type ReadResult = Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']>>;

/** Bytes of a refused body read and dropped before it is cancelled. */
const DRAIN_BYTES = 1024 * 1024;

/**
 * The rest of a refused body, in the background: read and dropped up to DRAIN_BYTES (most refusals
 * come at the end of a body: reading it to its end lets the connection carry the answer and the
 * next request), then cancelled. Never a cancel of a body that is ending: Node 20's Request body
 * (undici, what Next.js builds from the IncomingMessage) throws an uncaught "ReadableStream is
 * already closed" when a cancel lands between its last read and its close.
 */
async function finishBody(reader: ReadableStreamDefaultReader<Uint8Array>, pending: Promise<ReadResult> | null): Promise<void> {
  let dropped = 0;
  try {
    for (let next = await (pending ?? reader.read()); !next.done; next = await reader.read()) {
      dropped += next.value.byteLength;
      if (dropped > DRAIN_BYTES) {
        await reader.cancel();
        return;
      }
    }
  } catch {
    // The body failed (the client went away): nothing more to read.
  }
}

function malformed(err: unknown): UploadSyncError {
  if (err instanceof UploadSyncError) return err;
  return new UploadSyncError('ERR_MALFORMED', `Malformed multipart body: ${errorMessage(err)}`, { cause: err });
}

function limitError(what: string): UploadSyncError {
  return new UploadSyncError('ERR_LIMIT', `Refusing the upload: ${what}`);
}

/** A `Content-Length` header as a number, `null` when absent or not a plain number. */
function contentLength(value: string | null): number | null {
  if (value === null || !/^\s*\d+\s*$/.test(value)) return null;
  return Number(value);
}

function checkCount(value: unknown, name: string, dflt: number, min: number): number {
  if (value === undefined) return dflt;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= min) return value;
  throw new UploadSyncError('ERR_CONFIG', `Invalid option \`${name}\` of saveMultipart: expected a whole number >= ${min}, got ${String(value)}`);
}
