import { randomUUID } from 'node:crypto';
import { link, mkdir, open, realpath, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { resolveServeConfig, type ServeConfig } from '../config/config.js';
import { AUDIO_EXTENSIONS } from '../config/parse.js';
import { isInside } from '../config/paths.js';
import { UploadSyncError, errorCode } from '../shared/errors.js';
import { isPartialName, matchesExtensions } from '../shared/filter.js';
import { extensionForType, extensionOf, mediaTypeOf } from './mime.js';
import type { SaveUploadOptions, SavedUpload, SyncOptions, UploadInput } from '../shared/options.js';
import { tempPathFor } from '../engine/publish.js';
import { DEFAULT_URL_PREFIX } from './route.js';
import { syncUploads } from '../engine/sync.js';

/** Longest file name most filesystems take, in bytes. */
const NAME_MAX = 255;

/**
 * Saves an upload into the canonical uploads folder and mirrors it: streams `file` into a hidden
 * temp file (`.upload-sync-*.tmp`) beside its final name, checking `maxBytes` as bytes arrive,
 * renames it into place, then runs a targeted `syncUploads` (unless `sync: false`).
 *
 * ```ts
 * const form = await request.formData();
 * const saved = await saveUpload(form.get('file') as File, { allowedTypes: ['audio'], maxBytes: 200e6 });
 * return Response.json({ url: saved.url });
 * ```
 *
 * @throws UploadSyncError `ERR_TOO_LARGE`, `ERR_TYPE`, `ERR_INVALID_NAME`, `ERR_EXISTS`,
 *   `ERR_OUTSIDE`, `ERR_ABORTED`, `ERR_CONFIG`, or a filesystem error (`ENOSPC`, …). No temp file
 *   is left behind. A failed sync is not thrown: it is in the result's `sync`.
 */
export async function saveUpload(file: UploadInput, options: SaveUploadOptions = {}): Promise<SavedUpload> {
  if (options === null || typeof options !== 'object') throw configError('options', 'an options object', options);
  // Only the paths and the filter: a bad sync, watcher or cleanup setting must not refuse the upload
  // (the upload is saved; its sync result then says what is wrong).
  const config = resolveServeConfig(pickSyncOptions(options));
  const maxBytes = checkMaxBytes(options.maxBytes);
  const allowed = parseAllowedTypes(options.allowedTypes);
  const urlPrefix = checkUrlPrefix(options.urlPrefix);
  const folder = options.folder === undefined || options.folder === '' ? [] : checkFolder(options.folder);
  const input = describeInput(file);

  const fileName = options.name !== undefined ? checkName(options.name, 'name') : randomName(options.originalName ?? input.name, input.type);
  const rel = [...folder, fileName].join('/');
  checkType(fileName, config, allowed);
  if (input.size !== undefined && input.size > maxBytes) throw tooLarge(maxBytes, input.size);

  const dir = join(config.source, ...folder);
  await mkdir(dir, { recursive: true });
  // A folder given by the caller may already exist as a symlink leading out of the source.
  const [sourceReal, dirReal] = await Promise.all([realpath(config.source), realpath(dir)]);
  if (dirReal !== sourceReal && !isInside(dirReal, sourceReal)) {
    throw new UploadSyncError('ERR_OUTSIDE', `Upload folder ${folder.join('/')} resolves to ${dirReal}, outside the source folder ${config.source}`, { path: dir });
  }
  const target = join(dir, fileName);
  const overwrite = options.overwrite === true;
  if (!overwrite && (await exists(target))) throw alreadyExists(rel, target);

  const size = await writeAtomically(input.chunks(), target, { maxBytes, overwrite, rel, signal: options.signal });
  const sync = options.sync === false ? null : await syncUploads({ ...pickSyncOptions(options), files: [rel] });
  return { name: rel, path: target, url: `${urlPrefix}/${rel.split('/').map(encodeURIComponent).join('/')}`, size, sync };
}

/** The options `saveUpload` hands on to `resolveServeConfig` and `syncUploads`. */
function pickSyncOptions(o: SaveUploadOptions): SyncOptions {
  const { root, source, dest, force, extensions, logger, logFile, lockDir, lockTimeoutMs, strategy, fileMode, dirMode } = o;
  return { root, source, dest, force, extensions, logger, logFile, lockDir, lockTimeoutMs, strategy, fileMode, dirMode };
}

// ---------------------------------------------------------------------------------------------
// Names and types.

function configError(name: string, expected: string, got: unknown): UploadSyncError {
  const shown = typeof got === 'string' ? JSON.stringify(got) : typeof got === 'object' && got !== null ? Object.prototype.toString.call(got) : String(got);
  return new UploadSyncError('ERR_CONFIG', `Invalid ${name === 'file' ? 'argument' : 'option'} \`${name}\` of saveUpload: expected ${expected}, got ${shown}`);
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
function randomName(original: string | undefined, declaredType: string | undefined): string {
  let ext = original === undefined ? '' : extensionOf(original);
  if (ext === '' && declaredType) ext = extensionForType(declaredType);
  // Only plain extensions survive; an odd one (`.mp3;.php`, spaces) is dropped, so it cannot shape the name.
  return /^[a-z0-9]{1,16}$/.test(ext) ? `${randomUUID()}.${ext}` : randomUUID();
}

interface AllowedTypes {
  extensions: Set<string>;
  /** `audio/*` → `audio/`; `audio/mpeg` stays whole. */
  mediaTypes: string[];
}

/**
 * `allowedTypes`: extensions (`'mp3'`, `'.flac'`), media types (`'audio/mpeg'`, `'audio/*'`), or
 * the `'audio'` preset; an array or a comma list. `undefined`: every type.
 */
export function parseAllowedTypes(value: unknown): AllowedTypes | null {
  if (value === undefined) return null;
  const items = typeof value === 'string' ? value.split(',') : Array.isArray(value) ? (value as unknown[]) : null;
  const expected = 'extensions ("mp3"), media types ("audio/mpeg", "audio/*") or "audio", as an array or a comma list';
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
function checkType(fileName: string, config: ServeConfig, allowed: AllowedTypes | null): void {
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

function tooLarge(maxBytes: number, got?: number): UploadSyncError {
  return new UploadSyncError('ERR_TOO_LARGE', `Upload too large: the limit (\`maxBytes\`) is ${maxBytes} bytes${got === undefined ? '' : `, got ${got}`}`);
}

function alreadyExists(rel: string, target: string): UploadSyncError {
  return new UploadSyncError('ERR_EXISTS', `${rel} already exists in the uploads folder; pass \`overwrite: true\` to replace it`, { path: target });
}

const exists = (p: string) => stat(p).then(() => true, (err) => (errorCode(err) === 'ENOENT' ? false : Promise.reject(err)));

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

/**
 * Streams `chunks` into a temp file beside `target` and publishes it: `rename` when `overwrite`,
 * else `link` (which fails if the name was taken meanwhile) then unlink of the temp name. The temp
 * file is removed on every failure.
 */
async function writeAtomically(
  chunks: AsyncIterable<Uint8Array>,
  target: string,
  { maxBytes, overwrite, rel, signal }: { maxBytes: number; overwrite: boolean; rel: string; signal: AbortSignal | undefined },
): Promise<number> {
  const tmp = tempPathFor(target);
  let handle: FileHandle | undefined;
  let size = 0;
  const aborted = () => new UploadSyncError('ERR_ABORTED', 'Upload aborted; nothing was saved', { path: target });
  try {
    if (signal?.aborted) throw aborted();
    handle = await open(tmp, 'wx');
    for await (const chunk of chunks) {
      if (signal?.aborted) throw aborted();
      if (!(chunk instanceof Uint8Array)) throw configError('file', 'a stream of bytes (Uint8Array chunks)', chunk);
      size += chunk.byteLength;
      if (size > maxBytes) throw tooLarge(maxBytes);
      for (let offset = 0; offset < chunk.byteLength; ) {
        const { bytesWritten } = await handle.write(chunk, offset, chunk.byteLength - offset);
        offset += bytesWritten;
      }
    }
    if (signal?.aborted) throw aborted();
    await handle.close();
    handle = undefined;
    if (overwrite) {
      await rename(tmp, target);
    } else {
      try {
        await link(tmp, target);
      } catch (err) {
        if (errorCode(err) === 'EEXIST') throw alreadyExists(rel, target);
        // No hard links on this filesystem: check, then rename (a race can replace a file here).
        if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK'].includes(errorCode(err))) throw err;
        if (await exists(target)) throw alreadyExists(rel, target);
        await rename(tmp, target);
      }
    }
    return size;
  } finally {
    await handle?.close().catch(() => undefined);
    // After link() the temp name is a second name of the published file: always drop it.
    await unlink(tmp).catch(() => undefined);
  }
}
