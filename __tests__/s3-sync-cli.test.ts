/**
 * `upload-sync sync --dest s3://…` (push) and `--source s3://…` (pull), the built CLI against a
 * real Ceph RGW: the same output and exit codes as a local sync, errors that name the problem.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { CreateBucketCommand, DeleteBucketCommand } from '@aws-sdk/client-s3';
import { openStore } from '../src/store/open.js';
import type { S3Store } from '../src/store/s3-store.js';
import { cleanEnv, runCli } from './helpers.js';
import { bucketName, s3TestEnv, type S3Env } from './s3-helpers.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const gw = await s3TestEnv();
if ('skip' in gw) process.stderr.write(`s3-sync-cli.test.ts skipped: ${gw.skip}\n`);
const d = 'env' in gw ? describe : describe.skip;

d('upload-sync sync with a bucket (the built CLI)', () => {
  let env: S3Env;
  let store: S3Store;
  let tmp: string;
  let cliEnv: NodeJS.ProcessEnv;
  const bucket = bucketName('cli');
  const url = `s3://${bucket}/up loads`;

  beforeAll(async () => {
    env = (gw as { env: S3Env }).env;
    tmp = await mkdtemp(join(tmpdir(), 'upload-sync-s3-cli-'));
    cliEnv = cleanEnv({ ...env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', UPLOAD_SYNC_LOCK_DIR: join(tmp, 'locks') });
    store = await openStore(url, { env });
    await store.client.send(new CreateBucketCommand({ Bucket: bucket }));
    mkdirSync(join(tmp, 'src', 'album'), { recursive: true });
    writeFileSync(join(tmp, 'src', 'album', 'one #1.mp3'), 'one');
    writeFileSync(join(tmp, 'src', 'two.mp3'), 'two');
  });
  afterAll(async () => {
    if (store === undefined) return;
    const paths: string[] = [];
    for await (const page of store.list()) paths.push(...page.map((e) => e.path));
    await store.deleteMany(paths);
    await store.client.send(new DeleteBucketCommand({ Bucket: bucket }));
    store.destroy();
    rmSync(tmp, { recursive: true, force: true });
  });

  test('check, then sync --dest s3://… pushes (JSON result); sync --source s3://… pulls (one summary line naming the bucket)', async () => {
    const check = await runCli(['check', '--source', join(tmp, 'src'), '--dest', url], { env: cliEnv });
    expect(check.code).toBe(0);
    expect(check.stdout).toMatch(/would copy 2 files/);
    expect(check.stdout).toContain(`${url}`);

    const push = await runCli(['sync', '--source', join(tmp, 'src'), '--dest', url, '--json'], { env: cliEnv });
    expect(push.stderr).toBe('');
    expect(push.code).toBe(0);
    expect(JSON.parse(push.stdout)).toMatchObject({ status: 'ok', copied: ['album/one #1.mp3', 'two.mp3'] });

    const pull = await runCli(['sync', '--source', url, '--dest', join(tmp, 'pulled')], { env: cliEnv });
    expect(pull.code).toBe(0);
    expect(pull.stdout).toBe(`Done: ${url} -> ${join(tmp, 'pulled')}: copied 2 files (6 B), 0 unchanged in ${/in (.*)\n$/.exec(pull.stdout)![1]}\n`);
    expect(readFileSync(join(tmp, 'pulled', 'album', 'one #1.mp3'), 'utf8')).toBe('one');
  });

  test('errors name the problem: a missing bucket exits 1; a bad bucket name, or --cleanup with a bucket, exits 2', async () => {
    const missing = await runCli(['sync', '--source', join(tmp, 'src'), '--dest', `s3://${bucket}-none/x`], { env: cliEnv });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/ERR_STORE: .*NoSuchBucket/);
    const bad = await runCli(['sync', '--source', join(tmp, 'src'), '--dest', 's3://Not_A_Bucket/x'], { env: cliEnv });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/option `dest`.*bucket name/);
    const cleanup = await runCli(['sync', '--cleanup', '--source', join(tmp, 'src'), '--dest', url], { env: cliEnv });
    expect(cleanup.code).toBe(2);
    expect(cleanup.stderr).toMatch(/option `dest`.*a folder/);
  });

  test('the log file: a push that copies tells its start, files and summary; a push that changes nothing writes nothing', async () => {
    const logFile = join(tmp, 'logs', 'push.log');
    const logEnv = { ...cliEnv, UPLOAD_SYNC_LOG_FILE: logFile };
    const prefix = `${url}/log-test`; // (inside the bucket prefix that afterAll empties)
    expect((await runCli(['sync', '--source', join(tmp, 'src'), '--dest', prefix], { env: logEnv })).code).toBe(0);
    const first = readFileSync(logFile, 'utf8').trimEnd().split('\n');
    for (const line of first) expect(line).toMatch(/^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] (INFO|WARN|ERROR): \S/);
    expect(first[0]).toMatch(/INFO: Push started: .* -> s3:\/\/.* \(full\)$/);
    expect(first[first.length - 1]).toMatch(/INFO: Sync ok: 2 copied/);
    expect((await runCli(['sync', '--source', join(tmp, 'src'), '--dest', prefix], { env: logEnv })).code).toBe(0);
    expect(readFileSync(logFile, 'utf8').trimEnd().split('\n')).toEqual(first);
  });
});
