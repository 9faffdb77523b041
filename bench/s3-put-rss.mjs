// `--only s3-put-rss`: peak RSS of a process putting one 1 GiB object, generated as it goes (never
// on disk, never whole in memory), into a real Ceph RGW through the store's own multipart uploader
// (src/store/multipart.ts). Goal (issue 12): ≤ 100 MB. Measured in a child process of its own, from
// its VmHWM, so nothing of the bench is counted. Uses the gateway of UPLOAD_SYNC_TEST_S3_ENV, else
// starts one with scripts/ceph-start.sh (and stops it), else says why it skips.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const MB = 1024 * 1024;

function readEnvFile(file) {
  return Object.fromEntries(readFileSync(file, 'utf8').split('\n').map((l) => /^([A-Z0-9_]+)=(.*)$/.exec(l.trim())).filter(Boolean).map((m) => [m[1], m[2]]));
}

/**
 * Runs `fn(env)` with the gateway of UPLOAD_SYNC_TEST_S3_ENV, else one started with
 * scripts/ceph-start.sh (and stopped after), else says why `name` skips.
 */
export async function withGateway({ repo, work, name }, fn) {
  let envFile = process.env.UPLOAD_SYNC_TEST_S3_ENV;
  let started = null;
  if (!envFile) {
    if (!['/usr/bin/ceph-mon', '/usr/bin/ceph-osd', '/usr/bin/radosgw'].every((b) => existsSync(b))) {
      console.error(`  ${name}: skipped, no Ceph RGW (apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw)`);
      return;
    }
    started = join(work, `ceph-${name}`);
    execFileSync(join(repo, 'scripts', 'ceph-start.sh'), [started], { stdio: ['ignore', 'ignore', 'inherit'] });
    envFile = join(started, 'env');
  }
  try {
    await fn(readEnvFile(envFile));
  } finally {
    if (started) execFileSync(join(repo, 'scripts', 'ceph-down.sh'), [started], { stdio: 'inherit' });
  }
}

export async function s3PutRss({ repo, work, rows, sizeMB = 1024 }) {
  await withGateway({ repo, work, name: 's3-put-rss' }, async (env) => {
    const script = `
      import { CreateBucketCommand, DeleteBucketCommand } from '@aws-sdk/client-s3';
      import { readFileSync } from 'node:fs';
      const { openStore } = await import(${JSON.stringify(join(repo, 'dist', 'index.js'))});
      const hwm = () => Number(/VmHWM:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
      const env = ${JSON.stringify(env)};
      const FRESH = process.argv[1] === 'fresh';
      const bucket = 'rss-' + process.pid;
      const store = await openStore('s3://' + bucket + '/bench', { env });
      await store.client.send(new CreateBucketCommand({ Bucket: bucket }));
      await store.put('warm.bin', (async function* () { yield new Uint8Array(1000); })());
      const before = hwm();
      async function* gen(size) {
        const block = new Uint8Array(64 * 1024);
        for (let i = 0; i < block.length; i++) block[i] = i % 251;
        // fresh: a new chunk each time, as a socket gives them (the dead ones wait for V8's GC);
        // reused: one block yielded again and again, so only the uploader's own memory is seen.
        for (let sent = 0; sent < size; sent += block.length) yield FRESH ? block.slice(0, Math.min(block.length, size - sent)) : block.subarray(0, Math.min(block.length, size - sent));
      }
      const t = performance.now();
      const r = await store.put('big.bin', gen(${sizeMB} * ${MB}));
      const seconds = (performance.now() - t) / 1000;
      const peak = hwm();
      await store.deleteMany(['warm.bin', 'big.bin']);
      await store.client.send(new DeleteBucketCommand({ Bucket: bucket }));
      store.destroy();
      process.stdout.write(JSON.stringify({ before, peak, seconds, parts: r.parts, size: r.size }));`;
    for (const source of ['fresh', 'reused']) {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, source], {
      cwd: repo,
      encoding: 'utf8',
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    });
    if (r.status !== 0) throw new Error(`s3-put-rss: the child failed: ${r.stderr}`);
    const m = JSON.parse(r.stdout);
    if (m.size !== sizeMB * MB) throw new Error(`s3-put-rss: ${m.size} bytes put, not ${sizeMB * MB}`);
    rows.push(`| peak RSS of a process putting ${sizeMB} MiB (generated, ${source} 64 KiB chunks) into Ceph RGW, S3Store.put (8 MiB × 2 in flight; goal ≤ 100 MB) | | peak (SDK loaded, before the put) | ${(m.peak / MB).toFixed(0)} MB (${(m.before / MB).toFixed(0)} MB) | ${(sizeMB / m.seconds).toFixed(0)} MiB/s, ${m.parts} parts |`);
    console.error(`  s3-put-rss (${source} chunks): ${sizeMB} MiB in ${m.seconds.toFixed(1)} s, ${m.parts} parts, peak RSS ${(m.peak / MB).toFixed(0)} MB (${(m.before / MB).toFixed(0)} MB before)`);
    }
  });
}
