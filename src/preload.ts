// `upload-sync/preload`: `node -r upload-sync/preload server.js` (or `--import`) in a Next.js
// standalone server serves GET/HEAD of the uploads URL with createUploadsRoute before Next's
// request pipeline. See installPreload. Side effect only: it exports nothing.
import { createRequire } from 'node:module';
import { installPreload, type RouteFactory } from './next/preload.js';

// The route is the package's own `upload-sync/next` build beside this file, required at the
// first upload request (a server that never serves one never loads it).
const requireHere = createRequire(import.meta.url);
installPreload(process.env, () => (requireHere('./next.cjs') as { createUploadsRoute: RouteFactory }).createUploadsRoute);
