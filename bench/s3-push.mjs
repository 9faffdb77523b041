// `--only s3-push`: an initial push of tree A into an empty prefix, and a no-op push of it, side by
// side with `rclone sync` (Debian's rclone, S3 backend, provider Ceph, path style; its default
// comparison: size, then the modtime kept in X-Amz-Meta-Mtime, one HEAD per same-size object with 8
// checkers) to fresh prefixes on the same Ceph RGW. Medians of the reps, ratio ours/rclone (goal ≤ 1.0×
// for both). Every initial push is counted (objects and bytes listed, outside the timing) and its prefix
// deleted before the next (the gateway's memstore is shared: tree A is ~165 MB, one copy at a time).
// The gateway is withGateway's (UPLOAD_SYNC_TEST_S3_ENV, else one started and stopped); skips with
// one line when rclone or a gateway is missing.
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withGateway } from './s3-put-rss.mjs';

function timed(cmd, args, env) {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env, maxBuffer: 64 * 1024 * 1024 });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return ms;
}

export async function s3Push({ repo, work, cli, src, count, reps, noopReps = reps, rows, row, env: baseEnv }) {
  if (spawnSync('sh', ['-c', 'command -v rclone']).status !== 0) {
    console.error('  s3-push: skipped, rclone is not installed (apt-get install -y rclone)');
    return;
  }
  await withGateway({ repo, work, name: 's3-push' }, (gw) => pushBoth({ cli, src, count, reps, noopReps, row, env: baseEnv, gw, work, repo }));
}

async function pushBoth({ repo, work, cli, src, count, reps, noopReps, row, env: baseEnv, gw }) {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'; // the bench's own client (counting, cleaning)
  const { CreateBucketCommand, DeleteBucketCommand } = await import('@aws-sdk/client-s3');
  const { openStore } = await import(join(repo, 'dist', 'index.js'));
  const bucket = `push-${process.pid}`;
  const admin = await openStore(`s3://${bucket}`, { env: gw });
  const ours = { ...process.env, ...baseEnv, ...gw, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
  // rclone from environment variables only (an empty config file: no notice about a missing one).
  // AWS_CA_BUNDLE is left out: rclone 1.60 fails on a custom CA bundle with its own HTTP transport.
  const rcloneConfig = join(work, 'rclone.conf');
  writeFileSync(rcloneConfig, '');
  const { AWS_CA_BUNDLE: _ca, ...plain } = process.env;
  const rcloneEnv = {
    ...plain,
    RCLONE_CONFIG: rcloneConfig,
    RCLONE_CONFIG_X_TYPE: 's3',
    RCLONE_CONFIG_X_PROVIDER: 'Ceph',
    RCLONE_CONFIG_X_ENDPOINT: gw.AWS_ENDPOINT_URL,
    RCLONE_CONFIG_X_REGION: gw.AWS_REGION ?? 'us-east-1',
    RCLONE_CONFIG_X_ACCESS_KEY_ID: gw.AWS_ACCESS_KEY_ID,
    RCLONE_CONFIG_X_SECRET_ACCESS_KEY: gw.AWS_SECRET_ACCESS_KEY,
    RCLONE_CONFIG_X_FORCE_PATH_STYLE: 'true',
  };
  const push = {
    'upload-sync sync --dest s3://…': (prefix) => timed(process.execPath, [cli, 'sync', '--source', src, '--dest', `s3://${bucket}/${prefix}`], ours),
    'rclone sync': (prefix) => timed('rclone', ['sync', src, `X:${bucket}/${prefix}`], rcloneEnv),
  };
  const objects = async (prefix) => {
    let n = 0;
    let bytes = 0;
    const paths = [];
    for await (const page of admin.list(`${prefix}/`)) for (const e of page) (n++, (bytes += e.size), paths.push(e.path));
    return { n, bytes, paths };
  };
  const srcBytes = Number(execFileSync('sh', ['-c', `find "$1" -type f -printf '%s\\n' | awk '{ s += $1 } END { print s + 0 }'`, 'sh', src], { encoding: 'utf8' }));
  let seq = 0;
  try {
    await admin.client.send(new CreateBucketCommand({ Bucket: bucket }));
    const samples = Object.fromEntries(Object.keys(push).map((k) => [k, []]));
    const names = Object.keys(push);
    for (let rep = 0; rep < reps; rep++) {
      for (const name of rep % 2 === 0 ? names : [...names].reverse()) {
        const prefix = `init-${++seq}`;
        samples[name].push(push[name](prefix));
        const got = await objects(prefix);
        if (got.n !== count || got.bytes !== srcBytes) throw new Error(`s3-push: ${name} left ${got.n} objects (${got.bytes} B), the tree has ${count} (${srcBytes} B)`);
        await admin.deleteMany(got.paths); // the memstore holds one copy of A at a time
      }
    }
    row(`initial push into an empty prefix of a Ceph RGW (each push counted, ${reps} reps)`, 'A', med(samples), 'rclone sync');

    // No-op: each tool against the objects it wrote itself (rclone reads its own mtime metadata).
    for (const name of names) push[name](`noop-${name.split(' ')[0]}`);
    const noop = Object.fromEntries(names.map((k) => [k, []]));
    // More reps than the initial push (each is ~4 s): both tools wait on the gateway's HEADs, whose
    // speed moves with what the gateway does meanwhile (3 reps gave 0.83x to 1.04x in one session).
    for (let rep = 0; rep < noopReps; rep++) {
      for (const name of rep % 2 === 0 ? names : [...names].reverse()) noop[name].push(push[name](`noop-${name.split(' ')[0]}`));
    }
    console.error(`  s3-push: no-op samples (s): ${names.map((n) => `${n} ${noop[n].map((x) => (x / 1000).toFixed(2)).join(' ')}`).join('; ')}`);
    row(`no-op push (nothing changed; HEAD of every same-size object), ${noopReps} reps`, 'A', med(noop), 'rclone sync');
  } finally {
    for (const name of Object.keys(push)) {
      const prefix = `noop-${name.split(' ')[0]}`;
      const got = await objects(prefix).catch(() => ({ paths: [] }));
      if (got.paths.length > 0) await admin.deleteMany(got.paths).catch(() => undefined);
    }
    await admin.client.send(new DeleteBucketCommand({ Bucket: bucket })).catch((err) => console.error(`  s3-push: could not delete bucket ${bucket}: ${err.message}`));
    admin.destroy();
  }
}

function med(samples) {
  return Object.fromEntries(Object.entries(samples).map(([k, xs]) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return [k, s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2];
  }));
}
