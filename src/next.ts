// `upload-sync/next`: the Next.js App Router side. Web Request/Response and Node built-ins only;
// importing it never loads chokidar.
export { createUploadsRoute } from './next/route.js';
export { saveUpload } from './next/save.js';
export { saveMultipart } from './next/multipart.js';
export type { MultipartRequest } from './next/multipart.js';
export { UploadSyncError } from './shared/errors.js';
export type { UploadSyncErrorCode } from './shared/errors.js';
export type {
  SavedUpload,
  SaveUploadOptions,
  SaveMultipartOptions,
  SavedMultipart,
  SavedPart,
  SyncResult,
  UploadInput,
  UploadsRoute,
  UploadsRouteContext,
  UploadsRouteHandler,
  UploadsRouteOptions,
} from './shared/options.js';
