/**
 * Where the files of a `saveMultipart` request go (the mechanism; multipart.ts parses and decides):
 * temp files published once the whole body has parsed (disk), or final objects written as they
 * arrive and deleted if the request fails (a bucket).
 */
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { StoreConfig } from '../config/store.js';
import type { UploadContext } from './save.js';
import { alreadyExists, discard, exists, publishTemp, whileFolderSyncs, writeTemp, type Written } from './writer.js';

/** A file of the request where it landed: a temp file on disk, or its final object in the bucket. */
export interface Landed {
  rel: string;
  /** The final path on disk, or `s3://bucket/key`. */
  path: string;
  size: number;
  etag?: string;
  /** On disk: the temp file to publish. */
  temp?: Written;
}


/**
 * Where a request's files go. On disk each file is written to a temp file and all are published
 * once the body has fully arrived and parsed; in a bucket each is written under its final key as it
 * arrives (a random name no one else knows yet) and the ones written are deleted if the request fails
 * (for a moment, a reader who guessed the name could have read it).
 */
export interface Sink {
  write(chunks: Readable, fileName: string, rel: string, signal: AbortSignal): Promise<Landed>;
  /** Every file arrived and the body parsed: make them visible, all or none. */
  publish(landed: readonly Landed[]): Promise<void>;
  /** Makes what `publish` made visible durable, running `work` (the mirror's copy) meanwhile. */
  settle<T>(work: () => Promise<T>): Promise<T>;
  /** The request failed: remove what it wrote. */
  discard(landed: readonly Landed[]): Promise<void>;
}

export function diskSink(ctx: UploadContext): Sink {
  const temps = (landed: readonly Landed[]) => landed.flatMap((l) => (l.temp === undefined ? [] : [l.temp]));
  return {
    async write(chunks, fileName, rel, signal) {
      const target = join(ctx.dir, fileName);
      if (!ctx.overwrite && exists(target)) throw alreadyExists(rel, target);
      const temp = await writeTemp(chunks, target, { maxBytes: ctx.maxBytes, signal, fsync: ctx.fsync });
      return { rel, path: target, size: temp.size, temp };
    },
    async publish(landed) {
      const published: Written[] = [];
      try {
        for (const l of landed) {
          await publishTemp(l.temp!, { overwrite: ctx.overwrite, rel: l.rel });
          published.push(l.temp!);
        }
      } catch (err) {
        // All or nothing: a name taken meanwhile (a race on a given folder) undoes the files of this request.
        await discard(temps(landed));
        if (!ctx.overwrite) await Promise.all(published.map((w) => unlink(w.target).catch(() => undefined)));
        throw err;
      }
    },
    // Every file of the request is in ctx.dir: one fsync of it makes all their names durable.
    settle: (work) => whileFolderSyncs(ctx.fsync ? ctx.dir : null, work),
    discard: (landed) => discard(temps(landed)),
  };
}

/** The bucket's sink; the store's modules are loaded on the first upload into a bucket (a disk-only app never loads them). */
export async function storeSink(ctx: UploadContext, config: StoreConfig): Promise<Sink> {
  const { putUpload, removeStored, uploadStore } = await import('./store-save.js');
  const store = await uploadStore(config);
  return {
    write: (chunks, _fileName, rel, signal) => putUpload(store, rel, chunks, { maxBytes: ctx.maxBytes, signal, overwrite: ctx.overwrite, owned: true }),
    publish: async () => undefined,
    settle: (work) => work(),
    // Its keys are random names of this request's own: deleting them removes nothing of anyone else's.
    discard: (landed) => removeStored(store, landed),
  };
}
