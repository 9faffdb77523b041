// `--only s3-save-rss`: peak RSS of a process saving one 1 GiB upload into a real Ceph RGW with
// saveUpload (the built upload-sync/next, the store from UPLOAD_SYNC_STORE as a server has it), the
// bytes given as a web ReadableStream, as Next.js gives a route handler `request.body`:
// - fresh: a new 64 KiB chunk each time (what a request body gives: dead chunks wait for V8's GC);
// - reused: one chunk yielded again and again (the uploader's own memory alone);
// - fresh again, with `node --max-semi-space-size=1` (what an app can set; a library cannot).
// Goal (issue 12): ≤ 100 MB (here as everywhere in the bench, MB = 2^20 bytes, as ps and VmHWM count). Measured in a child process of its own, from its VmHWM; a warm-up save
// of 1,000 bytes first opens the store. The child holds only what a server running saveUpload
// has: the bucket is made and emptied by this (parent) process, so the AWS SDK is loaded here, not
// there (a store from the environment saves without it: src/store/lean-write.ts). The child also
// samples process.memoryUsage() every 50 ms and reports the sample at the highest RSS (what is
// resident: V8's heap, external memory, ArrayBuffers; anonymous memory and file pages from
// /proc/self/smaps_rollup). The gateway: see s3-put-rss.mjs.
//
// Where a fresh-chunk peak goes (issue 12, measured on Node 20.20): ~42 MB is node itself, ~12 MB
// what upload-sync/next, node:http, the signing and one request add before the first byte, 5 MiB
// the part buffer, and up to ~32 MB the spent request chunks: V8 (11.3) collects the young
// generation for ArrayBuffer memory only once 2 × its largest semi-space (2 × 16 MiB) of young
// backing stores is allocated (Heap::AllocateExternalBackingStore), and malloc keeps the freed
// chunks' pages for the next ones. Only an app's V8 options make it collect sooner (third row).

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { withGateway } from './s3-put-rss.mjs';

const MB = 1024 * 1024;

export async function s3SaveRss({ repo, work, rows, sizeMB = 1024 }) {
  await withGateway({ repo, work, name: 's3-save-rss' }, async (env) => {
    const script = `
      import { readFileSync } from 'node:fs';
      const hwm = () => Number(/VmHWM:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
      const { saveUpload } = await import(${JSON.stringify(join(repo, 'dist', 'next.js'))});
      const [mode, bucket, root] = process.argv.slice(1);
      const options = { root, sync: false };
      const warm = await saveUpload(new Uint8Array(1000), { ...options, originalName: 'warm.mp3' });
      const before = hwm();
      const size = ${sizeMB} * ${MB};
      const block = new Uint8Array(64 * 1024).map((_, i) => i % 251);
      let sent = 0;
      const body = new ReadableStream({
        pull(c) {
          if (sent >= size) return c.close();
          const n = Math.min(block.length, size - sent);
          sent += n;
          c.enqueue(mode === 'fresh' ? block.slice(0, n) : block.subarray(0, n));
        },
      });
      // What is resident at the highest RSS sampled: smaps_rollup splits it into anonymous memory
      // (V8's heap, malloc: ArrayBuffers, the part buffer) and file pages (node's own code touched).
      const rollup = () => {
        const t = readFileSync('/proc/self/smaps_rollup', 'utf8');
        const kb = (re) => Number(re.exec(t)?.[1] ?? NaN) * 1024;
        const anonymous = kb(/^Anonymous:\\s+(\\d+)/m);
        return { anonymous, file: kb(/^Rss:\\s+(\\d+)/m) - anonymous };
      };
      let atPeak = { ...process.memoryUsage(), ...rollup() };
      const sampler = setInterval(() => {
        const m = process.memoryUsage();
        if (m.rss > atPeak.rss) atPeak = { ...m, ...rollup() };
      }, 50);
      const t = performance.now();
      const saved = await saveUpload(body, { ...options, originalName: 'big.mp3' });
      const seconds = (performance.now() - t) / 1000;
      clearInterval(sampler);
      const peak = hwm();
      const keys = [warm, saved].map((s) => s.path.slice(('s3://' + bucket + '/').length));
      process.stdout.write(JSON.stringify({ before, peak, seconds, size: saved.size, parts: Number(/-(\\d+)"$/.exec(saved.etag)?.[1] ?? 0), keys, atPeak }));
      process.exit(0);`;
    // The third run: fresh chunks with V8's young generation kept small, an option of the app
    // (NODE_OPTIONS), never of a library: spent chunks are then collected every ~1 MB, not ~32 MB.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    const { CreateBucketCommand, DeleteBucketCommand, DeleteObjectsCommand, S3Client } = await import('@aws-sdk/client-s3');
    const admin = new S3Client({
      endpoint: env.AWS_ENDPOINT_URL, region: env.AWS_REGION ?? 'us-east-1', forcePathStyle: true,
      credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
      requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
    });
    try {
      for (const [mode, flags] of [['fresh', []], ['fresh', ['--max-semi-space-size=1']], ['reused', []]]) {
        const bucket = `save-rss-${process.pid}-${mode}-${flags.length}`;
        await admin.send(new CreateBucketCommand({ Bucket: bucket }));
        let m;
        try {
          const r = spawnSync(process.execPath, [...flags, '--input-type=module', '-e', script, mode, bucket, work], {
            cwd: repo,
            encoding: 'utf8',
            env: { ...process.env, ...env, UPLOAD_SYNC_STORE: `s3://${bucket}/bench`, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
          });
          if (r.status !== 0) throw new Error(`s3-save-rss: the child failed: ${r.stderr}`);
          m = JSON.parse(r.stdout);
        } finally {
          // The gateway keeps objects in RAM: delete each run's before the next (one 1 GiB object at a time).
          const keys = m?.keys ?? [];
          if (keys.length > 0) await admin.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.map((Key) => ({ Key })) } }));
          await admin.send(new DeleteBucketCommand({ Bucket: bucket }));
        }
        if (m.size !== sizeMB * MB) throw new Error(`s3-save-rss: ${m.size} bytes saved, not ${sizeMB * MB}`);
        const at = m.atPeak;
        const resident = `heap ${(at.heapUsed / MB).toFixed(0)}/${(at.heapTotal / MB).toFixed(0)} MB, external ${(at.external / MB).toFixed(0)} MB (ArrayBuffers ${(at.arrayBuffers / MB).toFixed(0)} MB), anonymous ${(at.anonymous / MB).toFixed(0)} MB, file pages ${(at.file / MB).toFixed(0)} MB`;
        rows.push(`| peak RSS of a process saving ${sizeMB} MiB (a web ReadableStream of ${mode} 64 KiB chunks${flags.length ? `, node ${flags.join(' ')}` : ''}) into Ceph RGW, saveUpload with UPLOAD_SYNC_STORE (5 MiB parts, one at a time; goal ≤ 100 MB) | | peak (before the save); at the sampled peak | ${(m.peak / MB).toFixed(1)} MB (${(m.before / MB).toFixed(1)} MB); ${resident} | ${(sizeMB / m.seconds).toFixed(0)} MiB/s, ${m.parts} parts |`);
        console.error(`  s3-save-rss (${mode} chunks${flags.length ? `, ${flags.join(' ')}` : ''}): ${sizeMB} MiB in ${m.seconds.toFixed(1)} s, ${m.parts} parts, peak RSS ${(m.peak / MB).toFixed(1)} MB (${(m.before / MB).toFixed(1)} MB before); at the sampled peak (RSS ${(at.rss / MB).toFixed(0)} MB): ${resident}`);
      }
    } finally {
      admin.destroy();
    }
  });
}
