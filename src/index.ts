export { syncUploads } from './sync.js';
export { resolveConfig, isSyncEnabled, AUDIO_EXTENSIONS } from './config.js';
export type { ResolvedConfig, Env } from './config.js';
export { UploadSyncError } from './errors.js';
export type { UploadSyncErrorCode } from './errors.js';
export type {
  CleanupOptions,
  CommonOptions,
  ExtensionsOption,
  Logger,
  Strategy,
  SyncErrorEntry,
  SyncOptions,
  SyncResult,
  UploadSyncOptions,
  WatcherOptions,
} from './options.js';
