/**
 * The `store` option and `UPLOAD_SYNC_STORE`: where the shared copy of the uploads lives in an
 * S3-compatible bucket (issue 12). Only parsed here: the AWS SDK is loaded on first use by
 * src/store/, so a configured store costs nothing until something talks to the bucket.
 */
import type { S3ClientLike, StoreOption } from '../shared/options.js';
import { envVar, fail, option, parseBoolean, readEnv, type Env, type Origin } from './parse.js';

/**
 * The store, resolved. The endpoint, region and credentials are read from the environment the
 * config was resolved with (the AWS SDK's own variables), so a test or an app passing its own `env`
 * gets what it passed; `client` (the user's own) wins over all of them.
 */
export interface StoreConfig {
  readonly bucket: string;
  /** Key prefix without leading or trailing `/` (`''`: the bucket's root). Keys are `prefix/relative/path`. */
  readonly prefix: string;
  /** The user's own S3Client: used as it is (its checksum settings included). */
  readonly client: S3ClientLike | null;
  /** `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`; `null`: the SDK's default (AWS). */
  readonly endpoint: string | null;
  /** `AWS_REGION`, else `AWS_DEFAULT_REGION`; `null` lets the SDK find one (`us-east-1` with a custom endpoint). */
  readonly region: string | null;
  /** Both `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`), else `null`: the SDK's default chain. */
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string; readonly sessionToken?: string } | null;
  /** `UPLOAD_SYNC_S3_PATH_STYLE`: `http://host/bucket/key` rather than `http://bucket.host/key` (MinIO, Ceph, most self-hosted gateways). */
  readonly pathStyle: boolean;
}

/**
 * The bucket naming rules of AWS S3 (general purpose buckets): 3–63 characters, lower-case letters,
 * digits, `.` and `-`, starting and ending with a letter or digit, no `..`, not an IP address, and
 * none of the reserved prefixes/suffixes. Stricter than some gateways, so a config that works on
 * one works on all.
 */
export function bucketNameProblem(name: string): string | null {
  if (name.length < 3 || name.length > 63) return 'a bucket name of 3 to 63 characters';
  if (!/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(name)) return 'a bucket name of lower-case letters, digits, "." and "-", starting and ending with a letter or digit';
  if (name.includes('..') || name.includes('.-') || name.includes('-.')) return 'a bucket name without "..", ".-" or "-."';
  if (/^\d+\.\d+\.\d+\.\d+$/.test(name)) return 'a bucket name that is not an IP address';
  if (/^(xn--|sthree-|amzn-s3-demo-)/.test(name) || /(-s3alias|--ol-s3|\.mrap|--x-s3|--table-s3)$/.test(name)) {
    return 'a bucket name without a prefix or suffix S3 reserves (xn--, sthree-, -s3alias, --ol-s3…)';
  }
  return null;
}

/**
 * A key prefix: `/` at either end dropped; no empty, `.` or `..` segment, no control character or
 * backslash. Taken literally: `%` is not decoded (`s3://b/a%20b` is the prefix `a%20b`).
 */
function parsePrefix(raw: string, origin: Origin, got: unknown): string {
  const prefix = raw.replace(/^\/+|\/+$/g, '');
  if (prefix === '') return '';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(prefix)) return fail(origin, 'a prefix without control characters or backslashes', got);
  if (prefix.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    return fail(origin, 'a prefix of non-empty folder names, none of them "." or ".."', got);
  }
  if (Buffer.byteLength(prefix) > 512) return fail(origin, 'a prefix of at most 512 bytes (S3 keys are at most 1024)', got);
  return prefix;
}

function parseBucket(bucket: unknown, origin: Origin, got: unknown): string {
  if (typeof bucket !== 'string' || bucket === '') return fail(origin, 'a bucket name', got);
  const problem = bucketNameProblem(bucket);
  return problem === null ? bucket : fail(origin, problem, got);
}

/** `s3://bucket/optional/prefix`. */
function parseStoreUrl(value: string, origin: Origin): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]*)(?:\/(.*))?$/s.exec(value.trim());
  if (m === null) return fail(origin, 'an s3:// URL such as "s3://my-bucket/uploads"', value);
  if (m[1] === '') return fail(origin, 'an s3:// URL with a bucket ("s3://my-bucket/uploads")', value);
  return { bucket: parseBucket(m[1], origin, value), prefix: parsePrefix(m[2] ?? '', origin, value) };
}

/** Is it an S3Client (or anything with the same `send`)? */
function isClient(value: unknown): value is S3ClientLike {
  return typeof value === 'object' && value !== null && typeof (value as { send?: unknown }).send === 'function';
}

/**
 * Resolves the `store` option, else `UPLOAD_SYNC_STORE`, with the AWS variables of `env`.
 * @returns `null` when neither is set, or when the option is `false` (no store, whatever the env says).
 * @throws UploadSyncError `ERR_CONFIG` naming the option or variable.
 */
export function resolveStore(value: StoreOption | false | undefined, env: Env): StoreConfig | null {
  if (value === false) return null;
  return resolveBucket(value, env, 'store', 'UPLOAD_SYNC_STORE');
}

/** Whether an option or variable value names a bucket (`s3://…`, or `{ bucket, … }`) rather than a folder. */
export function isBucketValue(value: unknown): boolean {
  if (typeof value === 'string') return /^s3:\/\//i.test(value.trim());
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `s3://bucket/prefix` of a resolved store: its name in logs, results and lock names. */
export function storeUrl(store: Pick<StoreConfig, 'bucket' | 'prefix'>): string {
  return `s3://${store.bucket}${store.prefix === '' ? '' : `/${store.prefix}`}`;
}

/**
 * A bucket given as the option `name` (an s3:// URL or `{ bucket, prefix?, client? }`), else as the
 * variable `variable` (an s3:// URL), with the AWS variables of `env`: the `store` option, and a
 * sync's `source` or `dest` when it is a bucket. Errors name the option or variable.
 * @returns `null` when neither is set.
 */
export function resolveBucket(value: unknown, env: Env, name: string, variable: string | null): StoreConfig | null {
  let origin: Origin;
  let parsed: { bucket: string; prefix: string; client: S3ClientLike | null };
  if (value !== undefined) {
    origin = option(name);
    if (typeof value === 'string') {
      parsed = { ...parseStoreUrl(value, origin), client: null };
    } else if (typeof value === 'object' && value !== null) {
      const { bucket, prefix, client } = value as { bucket?: unknown; prefix?: unknown; client?: unknown };
      if (prefix !== undefined && typeof prefix !== 'string') fail(option(`${name}.prefix`), 'a string', prefix);
      if (client !== undefined && !isClient(client)) fail(option(`${name}.client`), 'an S3Client (an object with a send method)', client);
      parsed = {
        bucket: parseBucket(bucket, option(`${name}.bucket`), bucket),
        prefix: parsePrefix((prefix as string | undefined) ?? '', option(`${name}.prefix`), prefix),
        client: (client as S3ClientLike | undefined) ?? null,
      };
    } else {
      return fail(origin, 'an s3:// URL or { bucket, prefix?, client? }', value);
    }
  } else {
    const raw = variable === null ? undefined : readEnv(env, variable);
    if (raw === undefined) return null;
    origin = envVar(variable!);
    parsed = { ...parseStoreUrl(raw, origin), client: null };
  }
  return Object.freeze({ ...parsed, ...clientSettings(env) });
}

function clientSettings(env: Env): Pick<StoreConfig, 'endpoint' | 'region' | 'credentials' | 'pathStyle'> {
  const endpointVar = readEnv(env, 'AWS_ENDPOINT_URL_S3') !== undefined ? 'AWS_ENDPOINT_URL_S3' : 'AWS_ENDPOINT_URL';
  const endpoint = readEnv(env, endpointVar) ?? null;
  if (endpoint !== null && !/^https?:\/\/[^/?#\s]+\/?$/i.test(endpoint)) fail(envVar(endpointVar), 'an http(s) URL such as "https://s3.example.com"', endpoint);
  const region = readEnv(env, 'AWS_REGION') ?? readEnv(env, 'AWS_DEFAULT_REGION') ?? null;
  const accessKeyId = readEnv(env, 'AWS_ACCESS_KEY_ID');
  const secretAccessKey = readEnv(env, 'AWS_SECRET_ACCESS_KEY');
  const sessionToken = readEnv(env, 'AWS_SESSION_TOKEN');
  const credentials =
    accessKeyId !== undefined && secretAccessKey !== undefined
      ? Object.freeze({ accessKeyId, secretAccessKey, ...(sessionToken === undefined ? {} : { sessionToken }) })
      : null;
  const rawPathStyle = readEnv(env, 'UPLOAD_SYNC_S3_PATH_STYLE');
  const pathStyle = rawPathStyle === undefined ? false : parseBoolean(rawPathStyle, envVar('UPLOAD_SYNC_S3_PATH_STYLE'));
  return { endpoint, region, credentials, pathStyle };
}

