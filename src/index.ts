export { syncUploads } from './engine/sync.js';
export { cleanupOld } from './cleanup/cleanup.js';
export { createWatcher } from './watch/watcher.js';
export type { UploadWatcher, WatcherError, WatcherEventMap, WatcherStats } from './watch/watcher.js';
export { resolveConfig, isSyncEnabled, AUDIO_EXTENSIONS } from './config/config.js';
export type { ResolvedConfig, Env } from './config/config.js';
export { UploadSyncError } from './shared/errors.js';
export type { UploadSyncErrorCode } from './shared/errors.js';
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
} from './shared/options.js';
