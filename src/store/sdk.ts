/**
 * The AWS SDK, loaded on first use only: `@aws-sdk/client-s3` and `@aws-sdk/s3-request-presigner`
 * are optional peer dependencies, so an app that never configures a store neither installs nor
 * loads them (the main entry stays light; lazy-s3.test.ts checks it, as lazy-chokidar.test.ts does
 * for chokidar). A real `import()` in both builds: tsup keeps it as written in the CJS bundle
 * (no splitting there), and the CLI bundle leaves `@aws-sdk/*` external (tsup.config.ts).
 *
 * Each `import()` is awaited inside a `try`, and the specifier is a literal: Next.js's Turbopack then
 * treats the package as optional, so an app that bundles `upload-sync/next` builds without the SDK
 * installed, and with it installed traces it into the standalone output. (A bare `import().catch()`
 * fails the build with "Module not found" when it is not installed; a `turbopackIgnore` comment
 * builds, but leaves the SDK out of `.next/standalone/node_modules`.)
 */
import { UploadSyncError, errorMessage } from '../shared/errors.js';

export type S3Sdk = typeof import('@aws-sdk/client-s3');
export type Presigner = typeof import('@aws-sdk/s3-request-presigner');

let sdk: Promise<S3Sdk> | null = null;
let presigner: Promise<Presigner> | null = null;

/** Node's "cannot find that package" (ESM and CJS spell it differently). */
function isMissing(err: unknown, name: string): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && errorMessage(err).includes(name);
}

function missing(name: string, what: string, err: unknown): UploadSyncError {
  return new UploadSyncError(
    'ERR_CONFIG',
    `${what} needs the optional peer dependency ${name}, which is not installed: run \`npm install ${name}\``,
    { cause: err },
  );
}

/**
 * `@aws-sdk/client-s3`, imported once per process.
 * @throws UploadSyncError `ERR_CONFIG` saying what to `npm install` when it is not installed.
 */
export function loadS3Sdk(): Promise<S3Sdk> {
  sdk ??= importSdk();
  return sdk;
}

async function importSdk(): Promise<S3Sdk> {
  try {
    return await import('@aws-sdk/client-s3');
  } catch (err) {
    sdk = null; // installed later in a long-lived process: try again next time
    throw isMissing(err, '@aws-sdk/client-s3') ? missing('@aws-sdk/client-s3', 'A store (option `store`, UPLOAD_SYNC_STORE)', err) : err;
  }
}

/**
 * `@aws-sdk/s3-request-presigner`, imported once per process, for presigned GET URLs only.
 * @throws UploadSyncError `ERR_CONFIG` saying what to `npm install` when it is not installed.
 */
export function loadPresigner(): Promise<Presigner> {
  presigner ??= importPresigner();
  return presigner;
}

async function importPresigner(): Promise<Presigner> {
  try {
    return await import('@aws-sdk/s3-request-presigner');
  } catch (err) {
    presigner = null;
    throw isMissing(err, '@aws-sdk/s3-request-presigner') ? missing('@aws-sdk/s3-request-presigner', 'Presigned URLs (delivery `redirect`)', err) : err;
  }
}
