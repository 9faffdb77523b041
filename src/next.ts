// `upload-sync/next`: the Next.js App Router side. Web Request/Response and Node built-ins only;
// importing it never loads chokidar.
export { createUploadsRoute } from './route.js';
export { saveUpload } from './save.js';
export { UploadSyncError } from './errors.js';
export type { UploadSyncErrorCode } from './errors.js';
export type {
  SavedUpload,
  SaveUploadOptions,
  SyncResult,
  UploadInput,
  UploadsRoute,
  UploadsRouteContext,
  UploadsRouteHandler,
  UploadsRouteOptions,
} from './options.js';
