export { syncUploads } from './engine/sync.js';
export { cleanupOld } from './cleanup/cleanup.js';
export { createWatcher } from './watch/watcher.js';
export type { UploadWatcher, WatcherError, WatcherEventMap, WatcherStats } from './watch/watcher.js';
export { resolveConfig, resolveServeConfig, resolveSyncConfig, resolveWatchConfig, resolveCleanupConfig } from './config/config.js';
export { isSyncEnabled, AUDIO_EXTENSIONS } from './config/parse.js';
export type { ResolvedConfig, Env, PathsConfig, ServeConfig, RunConfig, SyncConfig, WatchConfig, CleanupConfig, StoreConfig, BucketEnd } from './config/config.js';
export { UploadSyncError } from './shared/errors.js';
export { openStore } from './store/open.js';
export { S3Store } from './store/s3-store.js';
export type { StoreEntry, StoreHead, PutOptions, PutResult, GetOptions, GetResult, DeleteResult, StoreTuning } from './store/types.js';
export type { UploadSyncErrorCode } from './shared/errors.js';
export type {
  BucketObject,
  CleanupOptions,
  CleanupResult,
  CommonOptions,
  ExtensionsOption,
  Logger,
  S3ClientLike,
  StoreOption,
  Strategy,
  SyncErrorEntry,
  SyncOptions,
  SyncProgress,
  SyncResult,
  UploadSyncOptions,
  WatcherOptions,
} from './shared/options.js';
