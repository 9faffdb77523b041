/**
 * The real S3 gateway of the tests (Ceph RGW, scripts/ceph-up.sh), one per `jest` run:
 * - `.ci/run` starts it before `npm test` and exports UPLOAD_SYNC_TEST_S3_ENV (its env file);
 * - else, on a machine with the packages, the first S3 test file that asks starts one in the folder
 *   global-setup.mjs made for this run, under a file lock (two workers may ask at once), and
 *   global-teardown.mjs stops it. Why lazily rather than in globalSetup: every `jest` run
 *   would then pay 15–20 s and 200+ MB for a gateway, also runs of files that never touch S3;
 * - without the packages, the S3 test files skip, saying so in one line.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import lockfile from 'proper-lockfile';
import { ROOT, run } from './helpers.js';

export type S3Env = Record<string, string>;

const BINARIES = ['/usr/bin/ceph-mon', '/usr/bin/ceph-osd', '/usr/bin/radosgw'];
export const INSTALL_HINT = 'apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw';

function readEnvFile(file: string): S3Env {
  const env: S3Env = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}

/**
 * The gateway's environment (AWS_ENDPOINT_URL, keys, region, UPLOAD_SYNC_S3_PATH_STYLE), or the
 * reason the S3 tests skip. Starts the shared gateway when needed (15–20 s, once per jest run).
 */
export async function s3TestEnv(): Promise<{ env: S3Env } | { skip: string }> {
  const given = process.env.UPLOAD_SYNC_TEST_S3_ENV;
  if (given !== undefined && given !== '') return { env: readEnvFile(given) };
  if (!BINARIES.every((b) => existsSync(b))) return { skip: `no Ceph RGW on this machine (${INSTALL_HINT}), or set UPLOAD_SYNC_TEST_S3_ENV` };
  const dir = process.env.UPLOAD_SYNC_TEST_S3_DIR;
  if (dir === undefined || dir === '') return { skip: 'UPLOAD_SYNC_TEST_S3_DIR is not set (global-setup.mjs did not run)' };
  const envFile = join(dir, 'gw', 'env');
  const failed = join(dir, 'failed');
  const release = await lockfile.lock(dir, { realpath: false, retries: { retries: 2000, minTimeout: 200, maxTimeout: 300 } });
  try {
    if (existsSync(failed)) throw new Error(`The test gateway failed to start earlier in this run: ${readFileSync(failed, 'utf8')}`);
    if (!existsSync(envFile)) {
      const r = await run(join(ROOT, 'scripts', 'ceph-start.sh'), [join(dir, 'gw')], { timeoutMs: 400_000 });
      if (r.code !== 0) {
        writeFileSync(failed, r.stderr);
        throw new Error(`scripts/ceph-start.sh failed:\n${r.stdout}\n${r.stderr}`);
      }
    }
  } finally {
    await release();
  }
  return { env: readEnvFile(envFile) };
}

/** A fresh bucket name for one test file (S3's naming rules). */
export function bucketName(tag: string): string {
  return `${tag}-${randomBytes(5).toString('hex')}`;
}
