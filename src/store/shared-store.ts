/**
 * One store per store settings per process, for callers that resolve their config on every call
 * (`saveUpload` runs once per request): a new `S3Client` (or agent) per upload would set up the SDK
 * and open new connections each time, and leave its sockets to linger.
 */
import type { StoreConfig } from '../config/store.js';
import type { S3ClientLike } from '../shared/options.js';
import { canSign } from './lean-http.js';
import { LeanStore } from './lean-write.js';
import { storeFromConfig } from './open.js';
import type { S3Store } from './s3-store.js';
import type { BucketStore, StoreTuning } from './types.js';

/** Stores whose client this library made, by their settings (endpoint, region, credentials, path style, bucket, prefix, tuning). */
const built = new Map<string, Promise<S3Store>>();
/** Stores on the user's own client, by client (a client dropped by the user is dropped here too). */
const onClient = new WeakMap<S3ClientLike, Map<string, Promise<S3Store>>>();

/**
 * The store of a resolved config, made on first use and then shared. A failed open (the SDK not
 * installed) is not kept: the next call tries again.
 * @throws UploadSyncError `ERR_CONFIG` when the SDK is not installed.
 */
export function sharedStore(config: StoreConfig, tuning: StoreTuning = {}): Promise<S3Store> {
  const { client, ...settings } = config;
  const key = JSON.stringify([settings, tuning.partSize ?? null, tuning.queueSize ?? null]);
  let cache = built;
  if (client !== null) {
    cache = onClient.get(client) ?? new Map();
    onClient.set(client, cache);
  }
  let store = cache.get(key);
  if (store === undefined) {
    store = storeFromConfig(config, tuning);
    cache.set(key, store);
    store.catch(() => cache.delete(key));
  }
  return store;
}

const lean = new Map<string, LeanStore>();

/**
 * The store to save into and serve from: a {@link LeanStore} when requests can be signed here (a
 * store from the environment with its keys: `canSign`, the one place that condition is decided),
 * which never loads the AWS SDK; else `sharedStore`'s. One per settings and tuning per process.
 * @throws UploadSyncError `ERR_CONFIG` when the SDK is needed and not installed.
 */
export async function sharedBucketStore(config: StoreConfig, tuning: Required<StoreTuning>): Promise<BucketStore> {
  if (!canSign(config)) return await sharedStore(config, tuning);
  const key = JSON.stringify([config, tuning.partSize, tuning.queueSize]);
  let store = lean.get(key);
  if (store === undefined) {
    store = new LeanStore(config, tuning);
    lean.set(key, store);
  }
  return store;
}
