/** Stops the S3 test gateway if a test file started one in this run's folder (global-setup.mjs). */
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export default function globalTeardown() {
  const dir = process.env.UPLOAD_SYNC_TEST_S3_DIR;
  if (!dir) return;
  if (existsSync(join(dir, 'gw', 'pids'))) execFileSync(join(import.meta.dirname, '..', 'scripts', 'ceph-down.sh'), [join(dir, 'gw')], { stdio: 'inherit' });
  rmSync(dir, { recursive: true, force: true });
}
