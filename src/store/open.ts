/** Opening a store: the SDK loaded on first use, the client made from the config or the user's own. */
import { resolveStore, type StoreConfig } from '../config/store.js';
import type { Env } from '../config/parse.js';
import { UploadSyncError } from '../shared/errors.js';
import type { S3ClientLike, StoreOption } from '../shared/options.js';
import { S3Store } from './s3-store.js';
import { loadS3Sdk } from './sdk.js';
import type { StoreTuning } from './types.js';

/**
 * Opens a store (experimental: the primitives push/pull, saving and serving from a bucket are being
 * built on): `s3://bucket/prefix` or `{ bucket, prefix?, client? }`, with the AWS variables of
 * `options.env` (default `process.env`). Loads `@aws-sdk/client-s3` on first use.
 * @throws UploadSyncError `ERR_CONFIG` for a bad store, or when the SDK is not installed (saying what to install).
 */
export async function openStore(store: StoreOption, options: StoreTuning & { env?: Env } = {}): Promise<S3Store> {
  const config = resolveStore(store, options.env ?? process.env);
  if (config === null) throw new UploadSyncError('ERR_CONFIG', 'openStore needs a store: "s3://bucket/prefix" or { bucket, prefix?, client? }');
  return await storeFromConfig(config, options);
}

/**
 * Opens the store of a resolved config: loads the SDK (`ERR_CONFIG` saying what to install when it
 * is missing) and builds a client from the config's endpoint, region, credentials and path style,
 * with `WHEN_REQUIRED` checksums, unless the config carries the user's own client.
 */
export async function storeFromConfig(config: StoreConfig, tuning: StoreTuning = {}): Promise<S3Store> {
  const sdk = await loadS3Sdk();
  let client: S3ClientLike | null = config.client;
  let owned = false;
  if (client === null) {
    owned = true;
    client = new sdk.S3Client({
      ...(config.endpoint === null ? {} : { endpoint: config.endpoint }),
      ...(config.region !== null ? { region: config.region } : config.endpoint !== null ? { region: 'us-east-1' } : {}),
      // A copy: the SDK writes into the credentials object it is given, and the config is frozen.
      ...(config.credentials === null ? {} : { credentials: { ...config.credentials } }),
      forcePathStyle: config.pathStyle,
      // Since 3.729 the SDK adds CRC checksums (and aws-chunked bodies) by default, which R2, B2,
      // MinIO and Ceph refuse or store wrongly: only where an operation requires one.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }
  return new S3Store(sdk, client, config.bucket, config.prefix, tuning, owned);
}
