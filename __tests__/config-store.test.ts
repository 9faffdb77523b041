/** The `store` option and UPLOAD_SYNC_STORE (issue 12 point 1): parsing only, no SDK, no gateway. */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from '@jest/globals';
import { resolveCleanupConfig, resolveServeConfig, resolveSyncConfig, resolveWatchConfig } from '../src/index.js';
import { configError } from './helpers.js';
import { resolveStore } from '../src/config/store.js';

const root = join(tmpdir(), 'upload-sync-config-store-test');

const AWS = { AWS_ENDPOINT_URL: 'http://127.0.0.1:7480', AWS_REGION: 'eu-west-3', AWS_ACCESS_KEY_ID: 'AK', AWS_SECRET_ACCESS_KEY: 'SK' };

describe('store: s3:// URL or { bucket, prefix?, client? }', () => {
  test('none: null in every subsystem config', () => {
    for (const resolve of [resolveServeConfig, resolveSyncConfig, resolveWatchConfig, resolveCleanupConfig]) {
      expect(resolve({ root }, {}).store).toBeNull();
    }
  });

  test('UPLOAD_SYNC_STORE with the AWS variables; every subsystem gets the same store', () => {
    const env = { ...AWS, UPLOAD_SYNC_STORE: 's3://my-bucket/site/uploads/', UPLOAD_SYNC_S3_PATH_STYLE: 'true' };
    const expected = {
      bucket: 'my-bucket', prefix: 'site/uploads', client: null, endpoint: 'http://127.0.0.1:7480', region: 'eu-west-3',
      credentials: { accessKeyId: 'AK', secretAccessKey: 'SK' }, pathStyle: true,
    };
    for (const resolve of [resolveServeConfig, resolveSyncConfig, resolveWatchConfig, resolveCleanupConfig]) {
      expect(resolve({ root }, env).store).toEqual(expected);
    }
  });

  test('the option wins over the variable; AWS_ENDPOINT_URL_S3 over AWS_ENDPOINT_URL; no keys: the SDK chain', () => {
    const s = resolveStore('s3://other', { UPLOAD_SYNC_STORE: 's3://my-bucket', AWS_ENDPOINT_URL: 'http://a:1', AWS_ENDPOINT_URL_S3: 'https://s3.example.com' });
    expect(s).toMatchObject({ bucket: 'other', prefix: '', endpoint: 'https://s3.example.com', region: null, credentials: null, pathStyle: false });
    expect(resolveServeConfig({ root, store: 's3://opt-bucket/x' }, { UPLOAD_SYNC_STORE: 's3://env-bucket' }).store?.bucket).toBe('opt-bucket');
    // `false`: no store, whatever the variable says (even a bad one).
    expect(resolveServeConfig({ root, store: false }, { UPLOAD_SYNC_STORE: 's3://env-bucket' }).store).toBeNull();
    expect(resolveStore(false, { UPLOAD_SYNC_STORE: 'not a url' })).toBeNull();
  });

  test('an object with the user\'s own client, kept as it is; a prefix taken literally (no decoding, no normalization)', () => {
    const client = { send: async () => ({}) };
    const nfd = 'cafe\u0301';
    const s = resolveStore({ bucket: 'b-1.x', prefix: `/a%20b/${nfd}/`, client }, {});
    expect(s?.client).toBe(client);
    expect(s?.prefix).toBe(`a%20b/${nfd}`);
  });

  test.each<[unknown, RegExp]>([
    ['my-bucket', /option `store`.*s3:\/\/ URL/],
    ['http://my-bucket/x', /option `store`/],
    ['s3://', /with a bucket/],
    ['s3:///prefix', /with a bucket/],
    ['s3://My_Bucket', /lower-case letters/],
    ['s3://ab', /3 to 63/],
    ['s3://a'.padEnd(70, 'a'), /3 to 63/],
    ['s3://-bucket', /starting and ending/],
    ['s3://my..bucket', /without ".."/],
    ['s3://192.168.1.1', /not an IP address/],
    ['s3://xn--bucket', /reserves/],
    ['s3://bucket/a/../b', /"\." or "\.\."/],
    ['s3://bucket/..', /"\." or "\.\."/],
    ['s3://bucket/a//b', /non-empty folder names/],
    ['s3://bucket/a\\b', /backslashes/],
    [{ prefix: 'x' }, /option `store.bucket`/],
    [{ bucket: 'UPPER' }, /option `store.bucket`.*lower-case/],
    [{ bucket: 'okay', prefix: 'a/../b' }, /option `store.prefix`/],
    [{ bucket: 'okay', prefix: 3 }, /option `store.prefix`/],
    [{ bucket: 'okay', client: {} }, /option `store.client`.*send/],
    [42, /option `store`/],
  ])('%j is refused', (value, message) => {
    expect(configError(() => resolveStore(value as never, {}))).toMatch(message);
  });

  test.each<[Record<string, string>, RegExp]>([
    [{ UPLOAD_SYNC_STORE: 'bucket' }, /environment variable UPLOAD_SYNC_STORE/],
    [{ UPLOAD_SYNC_STORE: 's3://bucket/../x' }, /environment variable UPLOAD_SYNC_STORE.*"\.\."/],
    [{ UPLOAD_SYNC_STORE: 's3://bucket', UPLOAD_SYNC_S3_PATH_STYLE: 'maybe' }, /environment variable UPLOAD_SYNC_S3_PATH_STYLE/],
    [{ UPLOAD_SYNC_STORE: 's3://bucket', AWS_ENDPOINT_URL: 'localhost:9000' }, /environment variable AWS_ENDPOINT_URL:/],
    [{ UPLOAD_SYNC_STORE: 's3://bucket', AWS_ENDPOINT_URL_S3: 'ftp://x' }, /environment variable AWS_ENDPOINT_URL_S3/],
  ])('%j is refused, naming the variable', (env, message) => {
    expect(configError(() => resolveServeConfig({ root }, env))).toMatch(message);
  });

  test('the AWS variables are not read without a store (a bad one breaks nothing then)', () => {
    expect(resolveSyncConfig({ root }, { AWS_ENDPOINT_URL: 'nonsense', UPLOAD_SYNC_S3_PATH_STYLE: 'maybe' }).store).toBeNull();
  });
});
