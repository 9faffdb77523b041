/**
 * Public option and result types. Every option falls back to its environment variable, then to
 * its default; an explicit option always wins over the environment.
 */

/** Where messages go besides `debug` and the log file: pass your app's logger (console works). */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** `'*'` (everything), `'audio'` (a preset), a list such as `['mp3', 'flac']`, or a comma list `'mp3,flac'`. */
export type ExtensionsOption = '*' | 'audio' | string | readonly string[];

/** How a file reaches the mirror. */
export type Strategy = 'copy' | 'hardlink';

/**
 * What the library needs of an `S3Client` from `@aws-sdk/client-s3` (v3): its `send`. Typed
 * structurally so that the library's types do not require the SDK to be installed.
 */
export interface S3ClientLike {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  send(command: any, options?: any): Promise<any>;
}

/**
 * An S3-compatible bucket as the shared store of the uploads (several app servers): `s3://bucket/optional/prefix`,
 * or `{ bucket, prefix?, client? }` with your own `S3Client` (used as it is, its checksum settings included).
 * Without `client`, endpoint, region and credentials come from the AWS SDK's environment
 * (`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`),
 * path-style addressing from `UPLOAD_SYNC_S3_PATH_STYLE=true`, and checksums are `WHEN_REQUIRED`
 * (the SDK's newer defaults break most S3-compatible servers). Needs the optional peer dependency
 * `@aws-sdk/client-s3` (and `@aws-sdk/s3-request-presigner` for presigned URLs).
 */
export type StoreOption = string | { bucket: string; prefix?: string; client?: S3ClientLike };

/** Options every part of the library shares (`syncUploads`, `createWatcher`, `cleanupOld`). */
export interface CommonOptions {
  /**
   * Project root that relative `source`/`dest` resolve against.
   * @default env `UPLOAD_SYNC_ROOT`, else the cwd; when the cwd is `<x>/.next/standalone`, `<x>`
   */
  root?: string;
  /**
   * The canonical uploads folder.
   * @default env `UPLOAD_SYNC_SOURCE`, else `<root>/public/uploads`
   */
  source?: string;
  /**
   * The mirror inside the standalone output.
   * @default env `UPLOAD_SYNC_DEST`, else `<root>/.next/standalone/public/uploads`
   */
  dest?: string;
  /**
   * Run even when the environment turns sync off (`DISABLE_UPLOAD_SYNC`, no `NODE_ENV=production`).
   * @default false
   */
  force?: boolean;
  /**
   * Which files are synced (and, so, which files `delete` and cleanup may touch in dest).
   * @default env `UPLOAD_SYNC_EXTENSIONS`, else `'*'`
   * @example ['mp3', 'flac']  'audio'  'audio,jpg'
   */
  extensions?: ExtensionsOption;
  /** Also send messages to this logger. */
  logger?: Logger;
  /**
   * Append timestamped lines here (`false` turns the env's file off).
   * @default env `UPLOAD_SYNC_LOG_FILE`, else none
   */
  logFile?: string | false;
  /**
   * Folder for the cross-process lock; never inside source or dest.
   * @default env `UPLOAD_SYNC_LOCK_DIR`, else `<os tmpdir>/upload-sync`
   */
  lockDir?: string;
  /**
   * How long a run waits for another process's lock before it fails with `ELOCKED`.
   * @default 30000
   */
  lockTimeoutMs?: number;
  /**
   * The shared store in an S3-compatible bucket: `saveUpload` and `saveMultipart` save into it,
   * `createUploadsRoute` serves from it after the disk (push and pull: in progress).
   * `false`: none, even when `UPLOAD_SYNC_STORE` is set.
   * @default env `UPLOAD_SYNC_STORE`, else none
   */
  store?: StoreOption | false;
}

/** A bucket as an object: `{ bucket, prefix?, client? }`, as the `store` option takes it. */
export type BucketObject = Exclude<StoreOption, string>;

/** Options of `syncUploads`. */
export interface SyncOptions extends Omit<CommonOptions, 'source' | 'dest'> {
  /**
   * The canonical uploads folder; or a bucket to pull from (`s3://bucket/prefix`, or
   * `{ bucket, prefix?, client? }`): each object becomes a file of `dest`, written atomically, with
   * its mtime from `x-amz-meta-mtime` (objects written by another tool, without it: their
   * `LastModified`, to the second). The bucket's endpoint and credentials come as for `store`.
   * @default env `UPLOAD_SYNC_SOURCE`, else `<root>/public/uploads`
   */
  source?: string | BucketObject;
  /**
   * The mirror inside the standalone output; or a bucket to push to (`s3://bucket/prefix`, or
   * `{ bucket, prefix?, client? }`): each file becomes the object `prefix/path`, its mtime kept in
   * `x-amz-meta-mtime`. The quick check is size plus that mtime (a HEAD only where sizes match).
   * @default env `UPLOAD_SYNC_DEST`, else `<root>/.next/standalone/public/uploads`
   * @example 's3://my-bucket/uploads'
   */
  dest?: string | BucketObject;
  /**
   * Targeted mode: sync only these paths (source-relative, or absolute inside source); no tree walk.
   * A folder syncs its whole subtree.
   */
  files?: readonly string[];
  /** Report what would change, write nothing. @default false */
  dryRun?: boolean;
  /**
   * Mirror deletions: remove from dest what is gone from source (only files the extension filter allows).
   * @default env `UPLOAD_SYNC_DELETE`, else false
   */
  delete?: boolean;
  /**
   * `'copy'` tries a reflink first and falls back to a plain copy; `'hardlink'` links, and copies across filesystems.
   * @default env `UPLOAD_SYNC_STRATEGY`, else `'copy'`
   */
  strategy?: Strategy;
  /**
   * Mode of published files, a number or an octal string (`0o664`, `'664'`).
   * @default env `UPLOAD_SYNC_FILE_MODE`, else the source file's mode
   */
  fileMode?: number | string;
  /**
   * Mode of folders created or kept in dest (the old script's `chmod 775`).
   * @default env `UPLOAD_SYNC_DIR_MODE`, else the source folder's mode
   */
  dirMode?: number | string;
  /** Files copied at once; with a bucket, requests at once (HEADs, PUTs, GETs). @default 4; 16 with a bucket */
  concurrency?: number;
  /**
   * fsync each published file before its rename into place, and its folder after: the mirror then
   * survives a power cut as it was at the end of the run. Off by default: the mirror can be rebuilt
   * from the source (`upload-sync sync`), and an fsync per file slows a large sync.
   * @default env `UPLOAD_SYNC_FSYNC`, else false
   */
  fsync?: boolean;
  /** Stops starting new copies; the run resolves with what was done and an `ERR_ABORTED` error entry. */
  signal?: AbortSignal;
  /**
   * Called as the run advances: when copies are found (a long comparison hands them on in
   * batches of a few thousand, so the totals grow while it runs), then after each file copied (or
   * failed). For progress bars; a call that throws is ignored. A call with its own `onProgress`
   * gets a run of its own (it is not merged with other callers').
   */
  onProgress?: (progress: SyncProgress) => void;
}

/** How far a run's copies have got (deletions are not counted). */
export interface SyncProgress {
  filesDone: number;
  filesTotal: number;
  /** Bytes of the files done (copied, or that failed). */
  bytesDone: number;
  bytesTotal: number;
}

/** Options of `createWatcher` (all of `SyncOptions` but `files`, `dryRun` and `signal`). */
export interface WatcherOptions extends Omit<SyncOptions, 'files' | 'dryRun' | 'signal' | 'onProgress'> {
  /**
   * Called as the first full sync (the reconcile at start, which fills a fresh mirror and can take
   * minutes) advances, as `SyncOptions.onProgress` is; `ready` follows its last call. Later syncs
   * do not report progress. A call that throws is ignored.
   */
  onProgress?: (progress: SyncProgress) => void;
  /** A path is synced once its size and mtime have been stable this long. @default env `UPLOAD_SYNC_STABLE_MS`, else 1000 */
  stableMs?: number;
  /** Batch the changes of this window into one targeted sync. @default env `UPLOAD_SYNC_DEBOUNCE_MS`, else 200 */
  debounceMs?: number;
  /** A stable path waits at most this long for its batch while events keep coming. @default env `UPLOAD_SYNC_MAX_WAIT_MS`, else 5000 */
  maxWaitMs?: number;
  /** Full reconcile every this many ms (0: only at start). @default env `UPLOAD_SYNC_RECONCILE_MS`, else 600000 */
  reconcileMs?: number;
  /** Use polling instead of native events (network filesystems). @default false */
  usePolling?: boolean;
}

/** Options of `cleanupOld`. */
export interface CleanupOptions extends CommonOptions {
  /** Remove orphans older than this many days. @default env `UPLOAD_SYNC_CLEANUP_DAYS`, else 30 */
  olderThanDays?: number;
  /** `false` prunes by age alone, as the old `find -mtime +30 -delete` did. @default true */
  orphansOnly?: boolean;
  /** List what would go, remove nothing. @default false */
  dryRun?: boolean;
  /** Remove at most this many files in one run. @default env `UPLOAD_SYNC_MAX_DELETE`, else no cap */
  maxDelete?: number;
  /**
   * Stops the run: no file is removed after the abort (the one being removed finishes, a file
   * removal is one call); the run resolves with what was done and an `ERR_ABORTED` error entry.
   */
  signal?: AbortSignal;
}

/** Everything `resolveConfig` accepts (a bucket as `source` or `dest` only where a sync or watcher reads it). */
export type UploadSyncOptions = Omit<SyncOptions & WatcherOptions & CleanupOptions, 'source' | 'dest'> & Pick<SyncOptions, 'source' | 'dest'>;

/** One file (or the run itself, `path: ''`) that could not be handled. */
export interface SyncErrorEntry {
  /** Relative to dest (or source), `/`-separated; `''` for the run as a whole. */
  path: string;
  /** A stable code: Node's (`EACCES`, `ENOSPC`, …) or ours (`ERR_OUTSIDE`, `ELOCKED`, …). */
  code: string;
  message: string;
}

/** What `syncUploads` did. It never rejects: every failure is in here. */
export interface SyncResult {
  /** `partial`: some files failed; `failed`: nothing could be done; `disabled`: the env turns sync off. */
  status: 'ok' | 'partial' | 'failed' | 'disabled';
  dryRun: boolean;
  /** Paths relative to dest, `/`-separated, sorted. */
  copied: string[];
  updated: string[];
  deleted: string[];
  unchanged: number;
  /**
   * Source files left out by the extension filter (`extensions`, `UPLOAD_SYNC_EXTENSIONS`): neither
   * copied nor counted as unchanged. A filter that leaves out every file (a typo such as `audoi`)
   * shows as `filtered > 0` with nothing copied or unchanged. Dotfiles and partial uploads
   * (`.part`, `.tmp`, …) are never synced and are not counted here.
   */
  filtered: number;
  errors: SyncErrorEntry[];
  /** Bytes written (or that would be written, in a dry run). */
  bytes: number;
  durationMs: number;
}

/** What `cleanupOld` did. It never rejects: every failure is in here. */
export interface CleanupResult {
  /**
   * `partial`: some files could not be removed, or `maxDelete` stopped the run (the rest are
   * `ERR_MAX_DELETE` entries); `failed`: nothing could be done (bad config, `ERR_SOURCE_EMPTY`,
   * lock not obtained); `disabled`: the env turns sync off and `force` was not given.
   */
  status: 'ok' | 'partial' | 'failed' | 'disabled';
  dryRun: boolean;
  /** Files removed (or that would be, in a dry run): relative to dest, `/`-separated, sorted. Folders are not listed. */
  removed: string[];
  /**
   * Our temp files removed from the source (or that would be): relative to source, sorted. An
   * upload killed mid-write leaves one; it goes once the process that wrote it is gone (a live
   * process's is never touched).
   */
  removedFromSource: string[];
  /** Files looked at and left in place: still wanted, too recent, over the cap, or failed. */
  kept: number;
  /** Sum of the sizes of the removed files. */
  bytesFreed: number;
  errors: SyncErrorEntry[];
  durationMs: number;
}

// ---------------------------------------------------------------------------------------------
// `upload-sync/next`

/** The second argument Next.js passes a route handler (`params` is a promise since Next 15). */
export interface UploadsRouteContext {
  params?: unknown;
}

/** A route handler: Web `Request` in, Web `Response` out. */
export type UploadsRouteHandler = (request: Request, context?: UploadsRouteContext) => Promise<Response>;

/** What `createUploadsRoute` returns: export both from `app/uploads/[...path]/route.ts`. */
export interface UploadsRoute {
  GET: UploadsRouteHandler;
  HEAD: UploadsRouteHandler;
}

/** Options of `createUploadsRoute`. */
export interface UploadsRouteOptions extends Pick<CommonOptions, 'root' | 'source' | 'dest' | 'extensions' | 'logger' | 'logFile'> {
  /**
   * The shared store in a bucket: a file found in neither the source nor the mirror is served
   * from it (see `delivery`), after the same path checks (a refused path never reaches the bucket).
   * A bucket error answers 502 (503 when the bucket says 503), a missing object 404.
   * @default env `UPLOAD_SYNC_STORE`, else none (disk only)
   */
  store?: StoreOption;
  /**
   * How a file from the store is delivered. `'proxy'`: the route streams it, answering exactly as
   * for a file on disk (Range, 206, 304, 412, 416, HEAD, the same headers); ETag is the object's,
   * Last-Modified the file's mtime kept in `x-amz-meta-mtime` (else the upload time). `'redirect'`:
   * 307 to a presigned GET of the object (valid `presignExpiresIn`), whose answer carries the
   * route's Content-Type, Content-Disposition and Cache-Control; the bytes then go from the bucket
   * to the client, Range and conditionals answered by the bucket. HEAD is answered by the route in
   * both (a presigned GET answers HEAD with 403).
   * @default 'proxy'
   */
  delivery?: 'proxy' | 'redirect';
  /**
   * Seconds a presigned URL of `delivery: 'redirect'` is valid. Media players keep using the URL
   * they were redirected to for later ranges, so it must outlast the longest playback or seek.
   * @default 3600
   */
  presignExpiresIn?: number;
  /**
   * Milliseconds the bucket has to answer a HEAD, or the headers of a GET, before the route gives up
   * with `504 Gateway Timeout` (a body then streams as long as it takes). The AWS SDK sets no
   * timeout of its own: a bucket that accepts connections and never answers would hold requests forever.
   * @default 15000
   */
  storeTimeoutMs?: number;
  /**
   * Where the route is mounted, as it appears in the URL. Unset, the route finds the file path from
   * Next's `params.path` and the raw URL, so it works in any folder and under a `basePath`; a
   * request without such params falls back to `/uploads`.
   * @example '/media'
   */
  urlPrefix?: string;
  /**
   * The `Cache-Control` of files (and 304s). `no-transform` is always added (it keeps Next's
   * gzip off partial responses); `false` sends `no-transform` alone.
   * @default 'public, max-age=0' (caches revalidate with the ETag: a cheap 304)
   */
  cacheControl?: string | false;
  /** Serve from the mirror when the source folder lacks the file. @default true */
  fallbackToDest?: boolean;
  /**
   * Content types by extension, over the built-in table (mime-db with audio fixes).
   * @example { webm: 'video/webm' }
   */
  contentTypes?: Record<string, string>;
  /**
   * Extra headers on every file response.
   * @example { 'Content-Security-Policy': "sandbox" }
   */
  headers?: Record<string, string>;
  /**
   * Media types served inline besides the built-in ones. By default only audio (`audio/*`), video
   * (`video/*`) and raster images (PNG, JPEG, GIF, WebP, AVIF, BMP, ICO, HEIC, JXL, TIFF) are
   * inline; every other file (HTML, SVG, XML, JS, PDF, text, unknown types) is sent with
   * `Content-Disposition: attachment` (its name per RFC 6266/5987) and
   * `Content-Security-Policy: sandbox`, so an uploaded page or script never runs on the app's
   * origin. A type listed here loses both (the sandbox would also stop a browser's PDF viewer).
   * Entries: media types (`'application/pdf'`), `'type/*'` patterns, or `'*' + '/*'` (everything:
   * only for uploads you trust). Judged by the `Content-Type` sent (after `contentTypes`).
   * Anything else is `ERR_CONFIG`.
   * @default [] (audio, video and raster images only)
   * @example ['application/pdf']
   */
  inlineTypes?: readonly string[];
}

/** What `saveUpload` accepts: a `File`/`Blob` (from `request.formData()`), a web `ReadableStream`, bytes, or an async iterable of bytes (a Node stream). */
export type UploadInput = Blob | ReadableStream<Uint8Array> | Uint8Array | ArrayBuffer | AsyncIterable<Uint8Array>;

/** Options of `saveUpload`: where and how to save, plus the sync options used for the upload's targeted sync. */
export interface SaveUploadOptions
  extends Pick<SyncOptions, 'root' | 'source' | 'dest' | 'force' | 'extensions' | 'logger' | 'logFile' | 'lockDir' | 'lockTimeoutMs' | 'strategy' | 'fileMode' | 'dirMode'> {
  /**
   * Save into this S3-compatible bucket instead of the uploads folder (several app servers share
   * it). A server configured with a store saves there: `UPLOAD_SYNC_STORE` is enough, no code
   * change; `false` saves to disk even when it is set.
   *
   * The bytes stream into the bucket as they arrive: one PutObject when the upload fits in one
   * part (5 MiB), else a multipart upload of 5 MiB parts sent one at a time (the request body waits
   * while a part is sent), so memory stays one 5 MiB buffer per upload whatever the file's size
   * (largest object: 10,000 parts, ~48.8 GiB).
   * `maxBytes` is checked as the bytes arrive; over it (`ERR_TOO_LARGE`), on `signal` (`ERR_ABORTED`)
   * or on any error the multipart upload is aborted: no object and no pending upload is left.
   * The same names as on disk (random by default, `name`, `folder`), the same `allowedTypes` and
   * extension checks, all before a byte is sent. The object key is the store's prefix plus `name`;
   * the object keeps the save time in `x-amz-meta-mtime` (what push and pull compare) and the
   * `Content-Type` the route would serve it with.
   *
   * Never overwrites (unless `overwrite`): a PutObject sends `If-None-Match: *`, which AWS S3, R2
   * and Ceph RGW honour atomically. A multipart upload HEADs the key just before
   * CompleteMultipartUpload and sends `If-None-Match: *` with it; AWS S3 honours that atomically,
   * but Ceph RGW 16 (and servers like it) ignore it there: on those, another writer that completes
   * the same key between that HEAD and our Complete (milliseconds) is overwritten. Random names
   * (the default) never meet this; a chosen `name` can, on such a server.
   *
   * Nothing is written to disk and no sync runs (`sync` and `fsync` do nothing; the result's `sync`
   * is `null`): the bucket is the canonical copy, and `createUploadsRoute` with the same store
   * serves the object at once (disk first, then the bucket). A server's local mirror gets it at its
   * next pull (`syncUploads({ source: 's3://…' })`).
   * @default env `UPLOAD_SYNC_STORE`, else none: the uploads folder
   */
  store?: StoreOption | false;
  /**
   * The file name to save under: a name, never a path (no `/`, `\`, `..`, NUL, dotfile; at most 255
   * bytes), else `ERR_INVALID_NAME`.
   * @default a random id plus the original name's extension (`3f2c…e1.mp3`)
   */
  name?: string;
  /**
   * A subfolder of the source, `/`-separated, each part checked like `name`; created if missing.
   * @example 'albums/2024'
   */
  folder?: string;
  /**
   * The client's file name, for its extension when `name` is not given.
   * @default `file.name` for a `File`
   */
  originalName?: string;
  /**
   * Largest upload in bytes, checked while the bytes arrive; over it: `ERR_TOO_LARGE`, nothing kept.
   * @default Infinity
   */
  maxBytes?: number;
  /**
   * Allowed types, judged by the final name's extension: extensions (`'mp3'`), media types
   * (`'audio/mpeg'`, `'audio/*'`), the `'audio'` preset, or `'*'` (every type the extension filter
   * lets through); an array or a comma list. Else `ERR_TYPE`.
   * @default ['audio', 'image/jpeg', 'image/png', 'image/webp', 'image/avif', 'image/gif']: audio
   *   and cover art, all served inline by the route; never a document a browser runs (HTML, SVG, JS…)
   */
  allowedTypes?: readonly string[] | string;
  /** Replace a file of the same name (else `ERR_EXISTS`). @default false */
  overwrite?: boolean;
  /** The URL the uploads route is mounted at, for the returned `url`. @default '/uploads' */
  urlPrefix?: string;
  /** Run a targeted sync of the saved file. @default true */
  sync?: boolean;
  /** Stops the upload (`ERR_ABORTED`, nothing kept): pass `request.signal`. */
  signal?: AbortSignal;
  /**
   * fsync the file before it gets its name and the folder after, so an upload that was answered
   * survives a power cut or a kernel crash (the source holds the only copy). `false` trades that
   * for speed, for scratch data. (The mirror's own fsync is the sync option `fsync`, off by default.)
   * @default true
   */
  fsync?: boolean;
}

/**
 * Options of `saveMultipart`: those of `saveUpload` (each file gets a random name from its
 * part's file name, as `saveUpload` names a `File`), plus limits on the request's parts.
 */
export interface SaveMultipartOptions extends Omit<SaveUploadOptions, 'name' | 'originalName'> {
  /**
   * Largest request body in bytes (the files plus the multipart framing, a few hundred bytes a
   * part): a `Content-Length` over it is refused before a byte is read; without one (chunked),
   * the body is cut off as soon as it goes over. Either way `ERR_TOO_LARGE`, nothing kept.
   * @default Infinity
   */
  maxBytes?: number;
  /** Most file parts in one request; more: `ERR_LIMIT`, nothing kept. @default 10 */
  maxFiles?: number;
  /** Most non-file fields in one request; more: `ERR_LIMIT`. @default 100 */
  maxFields?: number;
  /** Longest non-file field value in bytes; longer: `ERR_LIMIT`. @default 65536 */
  maxFieldBytes?: number;
  /**
   * Stops the upload (`ERR_ABORTED`, nothing kept), besides `request.signal`, which is always
   * followed.
   */
  signal?: AbortSignal;
}

/** One file of a multipart request, saved. */
export interface SavedPart extends SavedUpload {
  /** The form field it came in (`file` for `<input type="file" name="file">`). */
  field: string;
  /** The file name the client sent (only its extension is used for the saved name). */
  originalName: string | undefined;
}

/** What `saveMultipart` saved. */
export interface SavedMultipart {
  /** The request's files, in the order they came, each with the same `sync` result. */
  files: SavedPart[];
  /** The request's other fields (text); a name sent twice keeps its last value. */
  fields: Record<string, string>;
  /** The one targeted sync of all the files; `null` with `sync: false`. */
  sync: SyncResult | null;
}

/** A saved upload. */
export interface SavedUpload {
  /**
   * Relative to the source folder, `/`-separated (`albums/2024/3f2c….mp3`). With a store: the
   * object's key relative to the store's prefix (the same name; the full key is the prefix, `/`, then this).
   */
  name: string;
  /** Absolute path of the file in the source folder. With a store: `s3://bucket/key` (the full key, not percent-encoded). */
  path: string;
  /** Where the uploads route serves it (`/uploads/albums/2024/3f2c….mp3`), percent-encoded; the same with a store. */
  url: string;
  /** Bytes written. */
  size: number;
  /** The targeted sync's result (it never throws: a failed sync is here); `null` with `sync: false`, and with a store. */
  sync: SyncResult | null;
  /** With a store only: the object's ETag as the bucket sends it (quotes included; `"…-N"` for an upload of N parts). */
  etag?: string;
}
