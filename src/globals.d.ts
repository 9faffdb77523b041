/** Injected by tsup from package.json. */
declare const __UPLOAD_SYNC_VERSION__: string;
