export { syncUploads } from './sync.js';
export { cleanupOld } from './cleanup.js';
export { createWatcher } from './watcher.js';
export type { UploadWatcher, WatcherError, WatcherEventMap, WatcherStats } from './watcher.js';
export { resolveConfig, isSyncEnabled, AUDIO_EXTENSIONS } from './config.js';
export type { ResolvedConfig, Env } from './config.js';
export { UploadSyncError } from './errors.js';
export type { UploadSyncErrorCode } from './errors.js';
export type {
  CleanupOptions,
  CleanupResult,
  CommonOptions,
  ExtensionsOption,
  Logger,
  Strategy,
  SyncErrorEntry,
  SyncOptions,
  SyncProgress,
  SyncResult,
  UploadSyncOptions,
  WatcherOptions,
} from './options.js';
