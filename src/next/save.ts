import { randomUUID } from 'node:crypto';
import { mkdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { resolveUploadConfig, type ServeConfig, type SyncConfig } from '../config/config.js';
import { AUDIO_EXTENSIONS } from '../config/parse.js';
import { isInside } from '../config/paths.js';
import { UploadSyncError } from '../shared/errors.js';
import { isPartialName, matchesExtensions } from '../shared/filter.js';
import { DEFAULT_ALLOWED_TYPES, extensionForType, extensionOf, mediaTypeOf } from './mime.js';
import type { SaveUploadOptions, SavedUpload, SyncOptions, SyncResult, UploadInput } from '../shared/options.js';
import { DEFAULT_URL_PREFIX } from './route-options.js';
import { alreadyExists, exists, publishTemp, tooLarge, whileFolderSyncs, writeTemp } from './writer.js';

/** Longest file name most filesystems take, in bytes. */
const NAME_MAX = 255;

/**
 * Saves an upload into the canonical uploads folder and mirrors it: streams `file` into a hidden
 * temp file (`.upload-sync-*.tmp`) beside its final name, checking `maxBytes` as bytes arrive,
 * fsyncs it, links or renames it into place, and fsyncs the folder (unless `fsync: false`) while a
 * targeted `syncUploads` mirrors the file (unless `sync: false`); it answers once both are done.
 *
 * With a store (option `store`, or `UPLOAD_SYNC_STORE`), it streams `file` into the bucket
 * instead, under the same name rules, and writes nothing to disk: see the option `store`.
 *
 * For a multipart request, use `saveMultipart(request)`: `request.formData()` holds the whole
 * body in memory before anything can be checked.
 *
 * ```ts
 * const saved = await saveUpload(request.body!, { originalName: 'take 2.flac', allowedTypes: 'audio', maxBytes: 200e6 });
 * return Response.json({ url: saved.url });
 * ```
 *
 * @throws UploadSyncError `ERR_TOO_LARGE`, `ERR_TYPE`, `ERR_INVALID_NAME`, `ERR_EXISTS`,
 *   `ERR_OUTSIDE`, `ERR_ABORTED`, `ERR_CONFIG`, `ERR_STORE` (with a store: the bucket's own errors),
 *   or a filesystem error (`ENOSPC`, …). No temp file is left behind, and with a store no object
 *   and no pending multipart upload. A failed sync is not thrown: it is in the result's `sync`.
 */
export async function saveUpload(file: UploadInput, options: SaveUploadOptions = {}): Promise<SavedUpload> {
  const ctx = prepareUpload(options, 'saveUpload');
  const input = describeInput(file);
  const fileName = options.name !== undefined ? checkName(options.name, 'name') : randomName(options.originalName ?? input.name, input.type);
  const rel = ctx.relOf(fileName);
  checkType(fileName, ctx.config, ctx.allowed);
  if (input.size !== undefined && input.size > ctx.maxBytes) throw tooLarge(ctx.maxBytes, input.size);

  if (ctx.config.store !== null) {
    // Loaded on the first save into a bucket: a disk-only app never loads the store's modules.
    const { putUpload, uploadStore } = await import('./store-save.js');
    const store = await uploadStore(ctx.config.store);
    const put = { maxBytes: ctx.maxBytes, signal: options.signal, overwrite: ctx.overwrite, owned: options.name === undefined, size: input.size };
    const stored = await putUpload(store, rel, input.chunks(), put);
    return { name: rel, path: stored.path, url: ctx.urlOf(rel), size: stored.size, sync: null, etag: stored.etag };
  }
  ctx.openFolder();
  const target = join(ctx.dir, fileName);
  if (!ctx.overwrite && exists(target)) throw alreadyExists(rel, target);

  const written = await writeTemp(input.chunks(), target, { maxBytes: ctx.maxBytes, signal: options.signal, fsync: ctx.fsync });
  await publishTemp(written, { overwrite: ctx.overwrite, rel });
  const sync = await whileFolderSyncs(ctx.fsync ? ctx.dir : null, async () => (options.sync === false ? null : syncSaved(ctx, [rel])));
  return { name: rel, path: target, url: ctx.urlOf(rel), size: written.size, sync };
}

/**
 * The targeted sync of what a save wrote. The engine is loaded on the first one: a process that
 * saves into a bucket, or with `sync: false`, or only serves, never loads it (its modules are
 * most of this entry's weight: ~5 MB of RSS per worker).
 */
export async function syncSaved(ctx: UploadContext, rels: string[]): Promise<SyncResult> {
  const { syncFilesWith } = await (engine ??= import('../engine/sync.js'));
  return syncFilesWith(ctx.syncConfig, rels);
}

/** The engine's module once asked for: an `import()` per upload went through the module loader every time. */
let engine: Promise<typeof import('../engine/sync.js')> | undefined;

/** What every upload (one file or a multipart request) checks and resolves before its first byte. */
export interface UploadContext {
  config: ServeConfig;
  /** The sync's settings, resolved on first call with the same paths. @throws UploadSyncError `ERR_CONFIG` */
  syncConfig: () => SyncConfig;
  maxBytes: number;
  allowed: AllowedTypes | null;
  overwrite: boolean;
  fsync: boolean;
  /** The folder the files go into (inside the source). */
  dir: string;
  relOf(fileName: string): string;
  urlOf(rel: string): string;
  /** Makes the folder if missing and refuses one that resolves outside the source (`ERR_OUTSIDE`). */
  openFolder(): void;
}

/**
 * Validates and resolves the options `saveUpload` and `saveMultipart` share.
 * @throws UploadSyncError `ERR_CONFIG`
 */
export function prepareUpload(options: SaveUploadOptions, fn: string): UploadContext {
  if (options === null || typeof options !== 'object') throw configError('options', 'an options object', options, fn);
  // Only the paths, the filter and the store: a bad sync, watcher or cleanup setting must not refuse
  // the upload (the upload is saved; its sync result then says what is wrong).
  const { serve: config, sync: syncConfig } = resolveUploadConfig({ ...pickSyncOptions(options), store: options.store });
  const maxBytes = checkMaxBytes(options.maxBytes);
  // Not every type by default: an HTML or SVG upload served from the app's origin is stored XSS.
  const allowed = parseAllowedTypes(options.allowedTypes ?? DEFAULT_ALLOWED_TYPES);
  const urlPrefix = checkUrlPrefix(options.urlPrefix);
  const folder = options.folder === undefined || options.folder === '' ? [] : checkFolder(options.folder);
  if (options.fsync !== undefined && typeof options.fsync !== 'boolean') throw configError('fsync', 'true or false', options.fsync, fn);
  const dir = join(config.source, ...folder);
  return {
    config,
    syncConfig,
    maxBytes,
    allowed,
    overwrite: options.overwrite === true,
    fsync: options.fsync !== false,
    dir,
    relOf: (fileName) => [...folder, fileName].join('/'),
    urlOf: (rel) => `${urlPrefix}/${rel.split('/').map(encodeURIComponent).join('/')}`,
    openFolder() {
      // Synchronous lookups (see `exists`): as promises they were three of an upload's trips through the thread pool.
      mkdirSync(dir, { recursive: true });
      // A folder given by the caller may already exist as a symlink leading out of the source.
      const [sourceReal, dirReal] = [realpathSync.native(config.source), realpathSync.native(dir)];
      if (dirReal !== sourceReal && !isInside(dirReal, sourceReal)) {
        throw new UploadSyncError('ERR_OUTSIDE', `Upload folder ${folder.join('/')} resolves to ${dirReal}, outside the source folder ${config.source}`, { path: dir });
      }
    },
  };
}

/** The options `saveUpload` hands on to `resolveServeConfig` and `syncUploads`. */
export function pickSyncOptions(o: SaveUploadOptions): SyncOptions {
  const { root, source, dest, force, extensions, logger, logFile, lockDir, lockTimeoutMs, strategy, fileMode, dirMode } = o;
  return { root, source, dest, force, extensions, logger, logFile, lockDir, lockTimeoutMs, strategy, fileMode, dirMode };
}

// ---------------------------------------------------------------------------------------------
// Names and types.

function configError(name: string, expected: string, got: unknown, fn = 'saveUpload'): UploadSyncError {
  const shown = typeof got === 'string' ? JSON.stringify(got) : typeof got === 'object' && got !== null ? Object.prototype.toString.call(got) : String(got);
  return new UploadSyncError('ERR_CONFIG', `Invalid ${name === 'file' || name === 'request' ? 'argument' : 'option'} \`${name}\` of ${fn}: expected ${expected}, got ${shown}`);
}

/**
 * A file or folder name: one path component that the sync mirrors and the route serves. Never a
 * path: no `/` or `\`, no `.`/`..`, no dotfile, no NUL or control character, at most 255 bytes.
 * @throws UploadSyncError `ERR_INVALID_NAME`, saying what is wrong.
 */
export function checkName(value: unknown, what: 'name' | 'folder' = 'name'): string {
  const refuse = (why: string): never => {
    throw new UploadSyncError('ERR_INVALID_NAME', `Invalid ${what} ${typeof value === 'string' ? JSON.stringify(value) : String(value)}: ${why}`);
  };
  if (typeof value !== 'string' || value === '') return refuse('expected a non-empty string');
  if (value.includes('/') || value.includes('\\')) return refuse(what === 'name' ? 'a name, not a path (no "/" or "\\"); use `folder` for a subfolder' : 'no "\\" and no empty part');
  if (value === '.' || value === '..') return refuse('"." and ".." are not names');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) return refuse('no NUL or control characters');
  if (value.startsWith('.')) return refuse('dotfiles are never synced or served');
  if (Buffer.byteLength(value) > NAME_MAX) return refuse(`at most ${NAME_MAX} bytes (UTF-8), got ${Buffer.byteLength(value)}`);
  if (value.trim() !== value) return refuse('no leading or trailing spaces');
  return value;
}

/** A `/`-separated subfolder of the source, each part a valid name. */
function checkFolder(value: unknown): string[] {
  if (typeof value !== 'string') return [checkName(value, 'folder')];
  return value.split('/').map((part) => checkName(part, 'folder'));
}

/** A random id plus the original extension (or one the declared type implies), lower case. */
export function randomName(original: string | undefined, declaredType: string | undefined): string {
  let ext = original === undefined ? '' : extensionOf(original);
  if (ext === '' && declaredType) ext = extensionForType(declaredType);
  // Only plain extensions survive; an odd one (`.mp3;.php`, spaces) is dropped, so it cannot shape the name.
  return /^[a-z0-9]{1,16}$/.test(ext) ? `${randomUUID()}.${ext}` : randomUUID();
}

export interface AllowedTypes {
  extensions: Set<string>;
  /** `audio/*` → `audio/`; `audio/mpeg` stays whole. */
  mediaTypes: string[];
}

/**
 * `allowedTypes`: extensions (`'mp3'`, `'.flac'`), media types (`'audio/mpeg'`, `'audio/*'`), or
 * the `'audio'` preset; an array or a comma list. `'*'` (alone): every type, `null`.
 */
export function parseAllowedTypes(value: unknown): AllowedTypes | null {
  if (value === undefined || value === '*' || (Array.isArray(value) && value.length === 1 && value[0] === '*')) return null;
  const items = typeof value === 'string' ? value.split(',') : Array.isArray(value) ? (value as unknown[]) : null;
  const expected = 'extensions ("mp3"), media types ("audio/mpeg", "audio/*"), "audio" or "*", as an array or a comma list';
  if (items === null) throw configError('allowedTypes', expected, value);
  const out: AllowedTypes = { extensions: new Set(), mediaTypes: [] };
  for (const item of items) {
    if (typeof item !== 'string') throw configError('allowedTypes', expected, value);
    const entry = item.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === 'audio') AUDIO_EXTENSIONS.forEach((e) => out.extensions.add(e));
    else if (/^[a-z0-9.+-]+\/(\*|[a-z0-9.+-]+)$/.test(entry)) out.mediaTypes.push(entry.endsWith('/*') ? entry.slice(0, -1) : entry);
    else if (/^\.?[a-z0-9]+$/.test(entry)) out.extensions.add(entry.replace(/^\./, ''));
    else throw configError('allowedTypes', expected, value);
  }
  if (out.extensions.size === 0 && out.mediaTypes.length === 0) throw configError('allowedTypes', expected, value);
  return out;
}

/**
 * Refuses a name the library would never serve or sync, or one `allowedTypes` excludes. The type
 * is judged by the final name's extension (through the same table the route serves with), never
 * by the type the client declared: the extension decides the `Content-Type` the file is served with.
 */
export function checkType(fileName: string, config: ServeConfig, allowed: AllowedTypes | null): void {
  const ext = extensionOf(fileName);
  const shown = ext === '' ? 'a file without an extension' : `.${ext}`;
  if (isPartialName(fileName)) {
    throw new UploadSyncError('ERR_TYPE', `Refusing ${JSON.stringify(fileName)}: its suffix marks a partial upload, which is never synced or served`);
  }
  if (!matchesExtensions(fileName, config.extensions)) {
    throw new UploadSyncError('ERR_TYPE', `Refusing ${shown}: the extension filter (\`extensions\` or UPLOAD_SYNC_EXTENSIONS) allows only ${[...config.extensions!].join(', ')}`);
  }
  if (allowed === null) return;
  const type = mediaTypeOf(fileName);
  const ok = allowed.extensions.has(ext) || (type !== false && allowed.mediaTypes.some((t) => (t.endsWith('/') ? type.startsWith(t) : type === t)));
  if (!ok) {
    const list = [...allowed.extensions, ...allowed.mediaTypes.map((t) => (t.endsWith('/') ? `${t}*` : t))].join(', ');
    throw new UploadSyncError('ERR_TYPE', `Refusing ${shown}${type === false ? '' : ` (${type})`}: allowed types are ${list}`);
  }
}

function checkMaxBytes(value: unknown): number {
  if (value === undefined) return Infinity;
  if (typeof value === 'number' && (value === Infinity || (Number.isInteger(value) && value >= 0))) return value;
  throw configError('maxBytes', 'a whole number of bytes >= 0 (or Infinity)', value);
}

function checkUrlPrefix(value: unknown): string {
  if (value === undefined) return DEFAULT_URL_PREFIX;
  if (typeof value === 'string' && (value === '' || value.startsWith('/'))) return value.replace(/\/+$/, '');
  throw configError('urlPrefix', 'a path starting with "/" such as "/uploads"', value);
}




// ---------------------------------------------------------------------------------------------
// Input and writing.

interface Input {
  /** Known up front for a Blob or a buffer: lets a too-large upload fail before a byte is written. */
  size: number | undefined;
  name: string | undefined;
  type: string | undefined;
  chunks: () => AsyncIterable<Uint8Array>;
}

function describeInput(file: unknown): Input {
  if (file instanceof Uint8Array) return { size: file.byteLength, name: undefined, type: undefined, chunks: () => once(file) };
  if (file instanceof ArrayBuffer) return { size: file.byteLength, name: undefined, type: undefined, chunks: () => once(new Uint8Array(file)) };
  if (typeof Blob !== 'undefined' && file instanceof Blob) {
    const name = typeof (file as { name?: unknown }).name === 'string' ? (file as File).name : undefined;
    return { size: file.size, name, type: file.type || undefined, chunks: () => readStream(file.stream()) };
  }
  if (isObject(file) && typeof file.getReader === 'function') {
    return { size: undefined, name: undefined, type: undefined, chunks: () => readStream(file as unknown as ReadableStream<Uint8Array>) };
  }
  if (isObject(file) && typeof file[Symbol.asyncIterator] === 'function') {
    return { size: undefined, name: undefined, type: undefined, chunks: () => file as unknown as AsyncIterable<Uint8Array> };
  }
  throw configError('file', 'a File or Blob, a web ReadableStream, a Buffer or Uint8Array, or an async iterable of bytes', file);
}

const isObject = (v: unknown): v is Record<string | symbol, unknown> => typeof v === 'object' && v !== null;

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

/** A web stream's chunks; cancels the stream when the consumer stops early (limit, abort, error). */
async function* readStream(stream: ReadableStream<Uint8Array>): AsyncIterable<Uint8Array> {
  const reader = stream.getReader();
  let done = false;
  try {
    for (;;) {
      const next = await reader.read();
      if (next.done) {
        done = true;
        return;
      }
      yield next.value;
    }
  } finally {
    if (!done) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}
