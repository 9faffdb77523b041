// `--only s3-save-rss`: peak RSS of a process saving one 1 GiB upload into a real Ceph RGW with
// saveUpload (the built upload-sync/next, the store from UPLOAD_SYNC_STORE as a server has it), the
// bytes given as a web ReadableStream, as Next.js gives a route handler `request.body`:
// - fresh: a new 64 KiB chunk each time (what a request body gives: dead chunks wait for V8's GC);
// - reused: one chunk yielded again and again (the uploader's own memory alone);
// - fresh again, with `node --max-semi-space-size=1` (what an app can set; a library cannot).
// Goal (issue 12): ≤ 100 MB. Measured in a child process of its own, from its VmHWM; a warm-up save
// of 1,000 bytes first loads the SDK and opens the client. The gateway: see s3-put-rss.mjs.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { withGateway } from './s3-put-rss.mjs';

const MB = 1024 * 1024;

export async function s3SaveRss({ repo, work, rows, sizeMB = 1024 }) {
  await withGateway({ repo, work, name: 's3-save-rss' }, async (env) => {
    const script = `
      import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectsCommand, S3Client } from '@aws-sdk/client-s3';
      import { readFileSync } from 'node:fs';
      const hwm = () => Number(/VmHWM:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
      const { saveUpload } = await import(${JSON.stringify(join(repo, 'dist', 'next.js'))});
      const [mode, bucket, root] = process.argv.slice(1);
      const admin = new S3Client({ forcePathStyle: true, region: 'us-east-1', requestChecksumCalculation: 'WHEN_REQUIRED' });
      await admin.send(new CreateBucketCommand({ Bucket: bucket }));
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
      const t = performance.now();
      const saved = await saveUpload(body, { ...options, originalName: 'big.mp3' });
      const seconds = (performance.now() - t) / 1000;
      const peak = hwm();
      const Objects = [warm, saved].map((s) => ({ Key: s.path.slice(('s3://' + bucket + '/').length) }));
      await admin.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects } }));
      await admin.send(new DeleteBucketCommand({ Bucket: bucket }));
      admin.destroy();
      process.stdout.write(JSON.stringify({ before, peak, seconds, size: saved.size, parts: Number(/-(\\d+)"$/.exec(saved.etag)?.[1] ?? 0) }));
      process.exit(0);`;
    // The third run: fresh chunks with V8's young generation kept small, an option of the app
    // (NODE_OPTIONS), never of a library: spent chunks are then collected every ~1 MB, not ~32 MB.
    for (const [mode, flags] of [['fresh', []], ['fresh', ['--max-semi-space-size=1']], ['reused', []]]) {
      const bucket = `save-rss-${process.pid}-${mode}-${flags.length}`;
      const r = spawnSync(process.execPath, [...flags, '--input-type=module', '-e', script, mode, bucket, work], {
        cwd: repo,
        encoding: 'utf8',
        env: { ...process.env, ...env, UPLOAD_SYNC_STORE: `s3://${bucket}/bench`, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
      });
      if (r.status !== 0) throw new Error(`s3-save-rss: the child failed: ${r.stderr}`);
      const m = JSON.parse(r.stdout);
      if (m.size !== sizeMB * MB) throw new Error(`s3-save-rss: ${m.size} bytes saved, not ${sizeMB * MB}`);
      rows.push(`| peak RSS of a process saving ${sizeMB} MiB (a web ReadableStream of ${mode} 64 KiB chunks${flags.length ? `, node ${flags.join(' ')}` : ''}) into Ceph RGW, saveUpload with UPLOAD_SYNC_STORE (5 MiB parts, one at a time; goal ≤ 100 MB) | | peak (SDK loaded, before the save) | ${(m.peak / MB).toFixed(0)} MB (${(m.before / MB).toFixed(0)} MB) | ${(sizeMB / m.seconds).toFixed(0)} MiB/s, ${m.parts} parts |`);
      console.error(`  s3-save-rss (${mode} chunks${flags.length ? `, ${flags.join(' ')}` : ''}): ${sizeMB} MiB in ${m.seconds.toFixed(1)} s, ${m.parts} parts, peak RSS ${(m.peak / MB).toFixed(0)} MB (${(m.before / MB).toFixed(0)} MB before)`);
    }
  });
}
