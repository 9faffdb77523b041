/**
 * One folder per `jest` run for the shared S3 test gateway (__tests__/s3-helpers.ts starts it there
 * on first use only; global-teardown.mjs stops it). Workers inherit the variable.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function globalSetup() {
  if (process.env.UPLOAD_SYNC_TEST_S3_ENV) return; // .ci/run started one for the whole `npm test`
  process.env.UPLOAD_SYNC_TEST_S3_DIR = mkdtempSync(join(tmpdir(), 'upload-sync-s3-'));
}
