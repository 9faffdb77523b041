/**
 * `send` (what Next's static handler serves `public/` with) as the oracle of the route's answers:
 * generated files with seeded sizes and nanosecond mtimes (sub-millisecond fractions, times half a
 * millisecond either side of a whole ms and of a second), each asked the same requests through
 * `send` on a real HTTP server and through the route. The ETag's value (send's is weak: `W/"…"`),
 * Last-Modified, the status, the length and the range must match, so after a restart hands a file
 * to Next's static handler, a browser's cached validators still match.
 */
import { once } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import send from 'send';
import { createUploadsRoute } from '../src/next.js';
import { run, tempProject, writeTree } from './helpers.js';

let p: ReturnType<typeof tempProject>;
let server: Server;
let base = '';

/** Seeded, so a failure replays. */
function prng(seed: number) {
  let s = seed >>> 0;
  return () => (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32;
}

interface Generated {
  name: string;
  size: number;
  /** `seconds.nanoseconds`, as `touch -d @…` takes it. */
  mtime: string;
}

/** Nanosecond parts that sit on the edges of Node's rounding to the ms, and of the second. */
const EDGE_NANOS = [0, 1, 499_999, 500_000, 500_001, 999_999, 1_000_000, 123_456_789, 999_499_999, 999_500_000, 999_999_999];

function generate(): Generated[] {
  const rand = prng(0x5e4d);
  const files: Generated[] = [];
  for (let i = 0; i < 60; i++) {
    const sec = 1_600_000_000 + Math.floor(rand() * 200_000_000);
    const nsec = i < EDGE_NANOS.length ? EDGE_NANOS[i]! : Math.floor(rand() * 1e9);
    const size = i % 7 === 0 ? 0 : Math.floor(rand() * 300_000);
    files.push({ name: `f${i}.mp3`, size, mtime: `${sec}.${String(nsec).padStart(9, '0')}` });
  }
  // Before 1970 too (negative times round as well).
  files.push({ name: 'old.mp3', size: 10, mtime: '-86399.999500000' });
  return files;
}
const FILES = generate();

beforeAll(async () => {
  p = tempProject('upload-sync-send-oracle-');
  await mkdir(p.source, { recursive: true });
  await writeTree(
    p.source,
    Object.fromEntries(FILES.map((f) => [f.name, Buffer.alloc(f.size, f.name)])),
  );
  for (const f of FILES) {
    const r = await run('touch', ['-m', '-d', `@${f.mtime}`, join(p.source, f.name)]);
    if (r.code !== 0) throw new Error(`touch ${f.mtime}: ${r.stderr}`);
  }
  // send as Next's static handler calls it: a root, the URL path, its default validators.
  server = createServer((req, res) => {
    send(req, decodeURIComponent(new URL(req.url!, 'http://x').pathname.replace(/^\/uploads/, '')), { root: p.source })
      .on('error', (err: { status?: number }) => {
        res.statusCode = err.status ?? 500;
        res.end();
      })
      .pipe(res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.close();
  await p?.cleanup();
});

interface Answer {
  status: number;
  headers: IncomingHttpHeaders | Record<string, string>;
  length: number;
}

function viaSend(path: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}${path}`, { headers, agent: false }, (res) => {
      let length = 0;
      res.on('data', (c: Buffer) => (length += c.length));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, length }));
    });
    req.on('error', reject);
    req.end();
  });
}

const route = () => createUploadsRoute({ root: p.root, source: p.source, dest: p.dest });

async function viaRoute(r: ReturnType<typeof route>, path: string, headers: Record<string, string>): Promise<Answer> {
  const res = await r.GET(new Request(`http://localhost${path}`, { headers }));
  const length = res.body === null ? 0 : (await res.arrayBuffer()).byteLength;
  return { status: res.status, headers: Object.fromEntries(res.headers), length };
}

/**
 * What both must agree on; the ETag compared by value (send's is weak, the route's strong). On an
 * error (416) only the status and `Content-Range`: send clears every other header there.
 */
function comparable(a: Answer) {
  const h = a.headers as Record<string, string | undefined>;
  if (a.status >= 400) return { status: a.status, contentRange: h['content-range'] };
  return {
    status: a.status,
    etag: h.etag?.replace(/^W\//, ''),
    lastModified: h['last-modified'],
    contentRange: h['content-range'],
    length: a.length,
  };
}

describe('the route answers as send does (Next\'s static handler)', () => {
  test('ETag value and Last-Modified of every generated file, GET and 64 KiB ranges', async () => {
    const r = route();
    const mismatches: string[] = [];
    for (const f of FILES) {
      const path = `/uploads/${f.name}`;
      const plain = [await viaSend(path, {}), await viaRoute(r, path, {})];
      const [s, o] = plain.map(comparable);
      if (JSON.stringify(s) !== JSON.stringify(o)) mismatches.push(`${f.name} (mtime ${f.mtime}): send ${JSON.stringify(s)} route ${JSON.stringify(o)}`);
      const etag = String(plain[0]!.headers.etag);
      const lastModified = String(plain[0]!.headers['last-modified']);
      // The requests a browser sends next: seeks, and revalidation with send's own validators.
      const requests: Record<string, string>[] = [
        { range: 'bytes=0-65535' },
        { range: `bytes=${Math.floor(f.size / 2)}-${Math.floor(f.size / 2) + 65535}` },
        { range: 'bytes=-100' },
        { range: `bytes=${f.size}-` },
        { 'if-none-match': etag },
        { 'if-modified-since': lastModified },
        { 'if-modified-since': new Date(Date.parse(lastModified) - 1000).toUTCString() },
        { range: 'bytes=0-9', 'if-range': lastModified },
      ];
      for (const headers of requests) {
        if (f.size < 100 && headers.range === 'bytes=-100') continue; // range-parser 1.2 (send) refuses a suffix longer than the file; RFC 9110 and the route serve it
        const a = comparable(await viaSend(path, headers));
        const b = comparable(await viaRoute(r, path, headers));
        if (JSON.stringify(a) !== JSON.stringify(b)) mismatches.push(`${f.name} (mtime ${f.mtime}) ${JSON.stringify(headers)}: send ${JSON.stringify(a)} route ${JSON.stringify(b)}`);
      }
    }
    expect(mismatches).toEqual([]);
  }, 60_000);

  test('the generated mtimes do cover both roundings (the test would catch a floor)', () => {
    const rounded = FILES.filter((f) => {
      const [sec, nsec] = f.mtime.replace('-', '').split('.').map(Number) as [number, number];
      return sec >= 0 && nsec % 1_000_000 >= 500_000;
    });
    expect(rounded.length).toBeGreaterThan(10);
  });
});
