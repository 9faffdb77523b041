/**
 * Hostile input. A fuzz of generated request paths against `createUploadsRoute` (encodings, double
 * encodings, NUL, backslashes, unicode lookalikes, overlong UTF-8, very long paths, odd headers):
 * never a 2xx for anything outside the uploads folder (or hidden in it), never an unhandled error.
 * A fuzz of file names for `syncUploads` and `saveUpload` (NFC/NFD, newlines, 255-byte names,
 * leading dashes, control and bidi characters): an exact mirror or a clear error, never a crash.
 *
 * Seeded: the seed is printed; RELIABILITY_SEED replays it. SOAK=1 runs ten times as many paths.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { syncUploads } from '../src/index.js';
import { createUploadsRoute, saveUpload, UploadSyncError } from '../src/next.js';
import type { UploadsRouteContext } from '../src/shared/options.js';
import { runCli, cleanEnv, tempFiles, tempProject, writeTree } from './helpers.js';
import { SOAK, filterTree, prng, randomTools, rawTree, seedFor, treeDiff, under } from './reliability-helpers.js';

for (const key of Object.keys(process.env)) {
  if (/UPLOAD_SYNC/.test(key)) delete process.env[key];
}

const SEED = seedFor('reliability-fuzz');
const PATHS = SOAK ? 100_000 : 10_000;

// ---------------------------------------------------------------------------------------------
// The route.

describe('createUploadsRoute: fuzzed request paths', () => {
  let p: ReturnType<typeof tempProject>;
  /**
   * What may be served: files inside the uploads folder (source, or dest as the fallback), each
   * with lowercase-only content. Everything that must never be served (outside the folder, or
   * hidden in it) holds only uppercase letters, so any leaked byte shows.
   */
  const inside: Record<string, string> = {
    'song.mp3': 'in:song:',
    'albums/Late Night/Café 曲.flac': 'in:cafe-flac:',
    'café.mp3': 'in:nfc:',
    'cafe\u0301.mp3': 'in:nfd:',
    'a b/c%20d.mp3': 'in:percent:',
    'x/y/z.ogg': 'in:deep:',
    '-rf.mp3': 'in:dash:',
    'dot..dot.mp3': 'in:dots:',
    'ｆｕｌｌ．mp3': 'in:fullwidth:',
    'uploads/nested.mp3': 'in:nested:',
    'cover.jpg': 'in:cover:',
    [`${'l'.repeat(250)}.mp3`]: 'in:long:',
  };
  const hidden: Record<string, string> = {
    '.secret.mp3': 'HIDDENDOT',
    'p.mp3.part': 'HIDDENPART',
    '.upload-sync-1-aaaaaaaaaaaa.tmp': 'HIDDENTEMP',
    '.hidden/in.mp3': 'HIDDENFOLDER',
  };
  const outside: Record<string, string> = {
    'secret.mp3': 'SECRETROOT',
    'public/secret.mp3': 'SECRETPUBLIC',
    'public/uploads-evil/x.mp3': 'SECRETSIBLING',
    'public/uploadsx.mp3': 'SECRETPREFIX',
    '.next/standalone/public/secret.mp3': 'SECRETSTANDALONE',
    '.next/standalone/public/uploads-evil/x.mp3': 'SECRETSIBLINGDEST',
  };
  const allowed = [...Object.values(inside), 'in:dest-only:'];

  beforeAll(async () => {
    p = tempProject('upload-sync-fuzz-route-');
    await writeTree(p.source, { ...inside, ...hidden });
    await writeTree(p.dest, { 'only-in-dest.mp3': 'in:dest-only:', '.secret2.mp3': 'HIDDENDEST' });
    await writeTree(p.root, outside);
    symlinkSync(join(p.root, 'secret.mp3'), join(p.source, 'link-out.mp3'));
    symlinkSync(join(p.root, 'public'), join(p.source, 'dir-out'));
    symlinkSync(join(p.source, 'song.mp3'), join(p.source, 'link-in.mp3'));
    symlinkSync(join(p.root, 'secret.mp3'), join(p.dest, 'dest-link.mp3'));
    symlinkSync(join(p.source, 'loop.mp3'), join(p.source, 'loop.mp3'));
  });
  afterAll(() => p?.cleanup());

  const r = randomTools(prng(SEED));
  const { int, pick, chance } = r;

  const names = [
    ...Object.keys(inside).flatMap((rel) => [rel, rel.split('/').map(encodeURIComponent).join('/')]),
    ...Object.keys(hidden),
    ...['secret.mp3', 'uploads-evil', 'x.mp3', 'public', 'uploads', 'uploadsx.mp3', '.next', 'standalone', 'link-out.mp3', 'dir-out', 'link-in.mp3', 'dest-link.mp3', 'only-in-dest.mp3', '.secret2.mp3', 'loop.mp3', 'etc', 'passwd', 'proc', 'self', 'environ'],
  ];
  const dots = ['.', '..', '%2e', '%2E', '%2e%2e', '%2E%2e', '.%2e', '%2e.', '%252e%252e', '%25%32%65%25%32%65', '%c0%ae%c0%ae', '%e0%80%ae%e0%80%ae', '%c0%2e', '．．', '%ef%bc%8e%ef%bc%8e', '‥', '%e2%80%a5', '%u002e%u002e', '...', '..%00', '..%20', ' ..', '..;', '..%2f', '..%5c', '..\\', '.\u200b.', '%2e%2e%2f', '..%c0%af', '..%255c', '.\n.', '.\t.'];
  const seps = ['/', '/', '/', '/', '//', '%2f', '%2F', '%252f', '%25252f', '\\', '%5c', '%5C', '%255c', '／', '%ef%bc%8f', '∕', '%e2%88%95', '⁄', '＼', '%ef%bc%bc', '%c0%af', '%e0%80%af', '%f0%80%80%af', '%c1%9c', '%00/', ';/', '/./', '/%2e/'];
  const junk = ['%00', '\0', '%', '%%', '%zz', '%g0', '%0', '%ff', '%fe%ff', '%ed%a0%80', '%f4%90%80%80', '%c3', '%80', '\u202e', '\ufeff', '%0a', '%0d%0a', '\n', ' ', '+', '~', '*', '%3f', '%23', ':', '@', '&', '=', '%3b', "'", '"', '<', '>', '`', '{', '|', '^', 'é', 'e\u0301', '\ud83c\udfb5', '\ud800', '%u0000', 'A'.repeat(256), 'a'.repeat(300), 'b'.repeat(4096)];
  const prefixes = ['/uploads/', '/uploads/', '/uploads/', '/uploads/', '/uploads', '/uploads//', '//uploads/', '/Uploads/', '/UPLOADS/', '/uploads/./', '/uploads/../uploads/', '/uploads%2f', '/uploads%2F', '/uploads\\', '/', '/api/../uploads/', '/uploads/..;/', '/base/uploads/', '/uploads/%2e/', '/./uploads/', '/uploads/.%2e/uploads/', '/%75ploads/', '/uploads%00/', '/uploadsx.mp3', '/uploads-evil/', '/uploads/dir-out/', '/uploads/uploads/../../'];
  /** Classic payloads, always in the corpus. */
  const classics = [
    '/uploads/../secret.mp3', '/uploads/..%2fsecret.mp3', '/uploads/%2e%2e/secret.mp3', '/uploads/%2e%2e%2fsecret.mp3', '/uploads/..%5csecret.mp3',
    '/uploads/..\\secret.mp3', '/uploads/%252e%252e%252fsecret.mp3', '/uploads/%c0%ae%c0%ae/secret.mp3', '/uploads/%c0%ae%c0%ae%c0%afsecret.mp3',
    '/uploads/..%c0%afsecret.mp3', '/uploads/．．／secret.mp3', '/uploads/%ef%bc%8e%ef%bc%8e%ef%bc%8fsecret.mp3', '/uploads/dir-out/secret.mp3',
    '/uploads/link-out.mp3', '/uploads/dest-link.mp3', '/uploads/loop.mp3', '/uploads/.secret.mp3', '/uploads/p.mp3.part', '/uploads/.hidden/in.mp3',
    '/uploads/%2ehidden/in.mp3', '/uploads/.upload-sync-1-aaaaaaaaaaaa.tmp', '/uploads/.secret2.mp3', '/uploads/song.mp3%00.txt', '/uploads/song.mp3%00',
    '/uploads/..%00/secret.mp3', '/uploads/../../../../../../etc/passwd', '/uploads/..%2f..%2f..%2f..%2fetc%2fpasswd', '/uploads/%2fetc%2fpasswd',
    '/uploads//etc/passwd', '/uploads/\\etc\\passwd', '/uploads/%5cetc%5cpasswd', '/uploads/..;/secret.mp3', '/uploads/%2e%2e;/secret.mp3',
    '/uploads-evil/x.mp3', '/uploadsx.mp3', '/uploads/../uploads-evil/x.mp3', '/uploads/..%2fuploads-evil%2fx.mp3', '/uploads/uploads/../../secret.mp3',
    `/uploads/${'../'.repeat(50)}secret.mp3`, `/uploads/${'%2e%2e%2f'.repeat(50)}secret.mp3`, `/uploads/${'a/'.repeat(2000)}x.mp3`,
    '/uploads/%25', '/uploads/%', '/uploads/%zz', '/uploads/%ed%a0%80.mp3', '/uploads/%c3.mp3', '/uploads/\u0000', '/uploads/x.mp3%',
  ];

  function segment(): string {
    const roll = r.rand();
    if (roll < 0.4) return pick(names);
    if (roll < 0.65) return pick(dots);
    if (roll < 0.85) return pick(junk);
    return pick(names) + pick(junk) + (chance(0.5) ? pick(names) : '');
  }

  function generate(): string {
    let path = pick(prefixes);
    const n = int(0, 6);
    for (let i = 0; i < n; i++) path += (i === 0 ? '' : pick(seps)) + segment();
    if (chance(0.05)) path = path.replace(/%/g, '%25'); // double encoding
    if (chance(0.05)) path = `/uploads/${pick(['../', '..%2f', '%2e%2e/', '..\\', '%2e%2e%5c']).repeat(int(1, 40))}${pick(names)}`;
    if (chance(0.05)) path += pick(['?x=../../secret.mp3', '#../secret.mp3', '?', '#', '%3f..', '%23..']);
    if (chance(0.03)) path = path.replace(/[a-z]/g, (c) => (chance(0.3) ? `%${c.charCodeAt(0).toString(16)}` : c));
    return path.startsWith('/') ? path : `/${path}`;
  }

  const ranges = [undefined, 'bytes=0-3', 'bytes=-2', 'bytes=5-', 'bytes=0-0,2-3', 'bytes=abc', 'items=0-1', 'bytes=99999-', 'bytes=-0', 'bytes=3-1', 'bytes=' + '0-1,'.repeat(500), ''];
  const validators = [undefined, '*', '"x"', 'W/"x"', 'garbage', 'Thu, 01 Jan 1970 00:00:00 GMT', 'not a date', '"' + 'a'.repeat(10_000) + '"'];

  /** Next's params for a URL: the segments after /uploads/, each decoded once (raw when that fails, as an attacker might forge). */
  function nextContext(url: string): UploadsRouteContext | undefined {
    if (chance(0.1)) return { params: Promise.resolve({ path: [pick(dots), pick(names)] }) };
    const pathname = new URL(url).pathname;
    if (!pathname.startsWith('/uploads/')) return undefined;
    const raw = pathname.slice('/uploads/'.length).split('/');
    const decoded = raw.map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
    return { params: Promise.resolve({ path: decoded }) };
  }

  test(`${PATHS} generated paths: no 2xx outside the uploads folder or for a hidden file, no unhandled error`, async () => {
    const routes = [
      createUploadsRoute({ root: p.root, source: p.source, dest: p.dest }),
      createUploadsRoute({ root: p.root, source: p.source, dest: p.dest }), // with Next's params
      createUploadsRoute({ root: p.root, source: p.source, dest: p.dest, urlPrefix: '/uploads', fallbackToDest: false }),
      createUploadsRoute({ root: p.root, source: p.source, dest: p.dest, extensions: 'audio' }),
    ];
    const fdsBefore = readdirSync('/proc/self/fd').length;
    const statuses: Record<number, number> = {};
    const problems: string[] = [];
    let served = 0;
    const corpus = [...classics, ...Object.keys(inside).map((rel) => `/uploads/${rel.split('/').map(encodeURIComponent).join('/')}`)];
    for (let i = 0; corpus.length < PATHS + classics.length; i++) corpus.push(generate());

    for (let i = 0; i < corpus.length; i++) {
      const path = corpus[i]!;
      let request: Request;
      try {
        request = new Request(`http://localhost${path}`, {
          method: chance(0.2) ? 'HEAD' : 'GET',
          headers: Object.fromEntries(
            [
              ['range', chance(0.3) ? pick(ranges) : undefined],
              ['if-none-match', chance(0.1) ? pick(validators) : undefined],
              ['if-match', chance(0.05) ? pick(validators) : undefined],
              ['if-range', chance(0.1) ? pick(validators) : undefined],
              ['if-modified-since', chance(0.05) ? pick(validators) : undefined],
            ].filter(([, v]) => v !== undefined) as [string, string][],
          ),
        });
      } catch (err) {
        problems.push(`case ${i} ${JSON.stringify(path)}: the test could not build a Request: ${(err as Error).message}`);
        continue;
      }
      const which = i % routes.length;
      const route = routes[which]!;
      const head = request.method === 'HEAD';
      const label = `case ${i} (seed ${SEED}, route ${which}) ${request.method} ${JSON.stringify(path)} -> ${request.url}`;
      let res: Response;
      try {
        res = await (head ? route.HEAD : route.GET)(request, which === 1 ? nextContext(request.url) : undefined);
      } catch (err) {
        problems.push(`${label}: the handler rejected: ${String(err)}`);
        continue;
      }
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      if (![200, 206, 304, 400, 403, 404, 412, 416].includes(res.status)) problems.push(`${label}: status ${res.status}`);
      const body = head || res.body === null ? '' : Buffer.from(await res.arrayBuffer()).toString('utf8');
      if (res.status >= 200 && res.status < 300) {
        served++;
        if (/[A-Z]/.test(body)) problems.push(`${label}: served a file that must never be served: ${JSON.stringify(body.slice(0, 40))}`);
        else if (!head && !allowed.some((c) => c.includes(body))) problems.push(`${label}: served bytes of no file in the uploads folder: ${JSON.stringify(body.slice(0, 40))}`);
      }
      if (problems.length >= 50) break;
    }
    // eslint-disable-next-line no-console
    console.log(`reliability-fuzz: ${corpus.length} requests (seed ${SEED}), statuses ${JSON.stringify(statuses)}`);
    expect(problems).toEqual([]);
    // The corpus reached real files too: every file inside is served by its URL.
    expect(served).toBeGreaterThanOrEqual(Object.keys(inside).length);
    // Every response body was closed: no file descriptor left open.
    expect(readdirSync('/proc/self/fd').length).toBeLessThanOrEqual(fdsBefore + 5);
  }, 300_000);

  test('each file inside is served whole by its encoded URL (the fuzz reaches real files)', async () => {
    const route = createUploadsRoute({ root: p.root, source: p.source, dest: p.dest });
    for (const [rel, content] of [...Object.entries(inside), ['only-in-dest.mp3', 'in:dest-only:'], ['link-in.mp3', 'in:song:']] as const) {
      const res = await route.GET(new Request(`http://localhost/uploads/${rel.split('/').map(encodeURIComponent).join('/')}`));
      expect([rel, res.status, await res.text()]).toEqual([rel, 200, content]);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// File names.

/** Hostile names that every Linux filesystem stores: valid UTF-8, no '/', no NUL, at most 255 bytes. */
const HOSTILE_NAMES = [
  'café.mp3', // NFC
  'cafe\u0301.mp3', // NFD: another file on Linux
  'line\nbreak.mp3',
  'carriage\rreturn.mp3',
  'tab\tname.mp3',
  `${'a'.repeat(251)}.mp3`, // 255 bytes
  `${'曲'.repeat(83)}.mp3`, // 253 bytes
  `${'é'.repeat(125)}.mp3`, // 254 bytes
  `${'🎵'.repeat(62)}.mp3`, // 252 bytes
  '-rf.mp3',
  '--help.mp3',
  '-',
  '--',
  '-v',
  ' leading-space.mp3',
  'trailing-space.mp3 ',
  'back\\slash.mp3',
  'quote"s.mp3',
  "apos'.mp3",
  '$(touch pwned).mp3',
  '`id`.mp3',
  '*.mp3',
  '?.mp3',
  '[a].mp3',
  '%2e%2e.mp3',
  '%00.mp3',
  'emoji🎵.mp3',
  '\u202eevil.mp3', // right-to-left override
  'zero\u200bwidth.mp3',
  'ｆｕｌｌ．ｍｐ３',
  'CON.mp3',
  'nul',
  'a.mp3.',
  'UPPER.MP3',
  'no-extension',
  '#hash.mp3',
  'semi;colon.mp3',
  'amp&er.mp3',
  'percent%.mp3',
  '\u0085nel.mp3',
  '\u2028line-sep.mp3',
  'del\u007f.mp3',
  'esc\u001b[31m.mp3',
  '..dots.mp3',
  'x..mp3',
  '....',
  '.hidden.mp3', // a dotfile: never synced
  'partial.mp3.part', // a partial upload: never synced
  'backup.mp3~',
];

/** A random name: code points from many planes, at most 255 bytes, no '/' or NUL, not '.' or '..'. */
function randomName(t: ReturnType<typeof randomTools>): string {
  const pools: Array<[number, number]> = [
    [0x20, 0x7e], [0x01, 0x1f], [0x7f, 0x9f], [0xa0, 0xff], [0x300, 0x36f], [0x400, 0x4ff], [0x590, 0x6ff], [0x200b, 0x200f],
    [0x2028, 0x202e], [0x3000, 0x303f], [0x4e00, 0x4fff], [0xff01, 0xff5e], [0xfff0, 0xfffd], [0x1f300, 0x1f64f], [0x10000, 0x1007f],
  ];
  let name = '';
  const length = t.chance(0.1) ? 200 : t.int(1, 40);
  for (let i = 0; i < length; i++) {
    const [lo, hi] = t.pick(pools);
    const cp = t.int(lo, hi);
    if (cp === 0x2f || (cp >= 0xd800 && cp <= 0xdfff)) continue;
    const next = name + String.fromCodePoint(cp);
    if (Buffer.byteLength(next) > 249) break; // room for a leading dash and ".flac": 255 bytes at most
    name = next;
  }
  if (t.chance(0.1)) name = `-${name}`;
  if (t.chance(0.7)) name += t.pick(['.mp3', '.flac', '.MP3', '.wav']);
  if (name === '' || name === '.' || name === '..') name = `x${name}`;
  return name;
}

/** The documented filter: dotfiles and partial uploads are never synced (no extension filter here). */
const syncable = (rel: string) => rel.split('/').every((part) => !part.startsWith('.') && !/(\.part|\.partial|\.crdownload|\.tmp|~)$/i.test(part));

describe('file names: syncUploads', () => {
  test('hostile and random names: an exact mirror, full and targeted, and an exact CLI run', async () => {
    const p = tempProject('upload-sync-fuzz-names-');
    try {
      const t = randomTools(prng(SEED ^ 0xa11ce));
      const names = [...HOSTILE_NAMES, ...Array.from({ length: SOAK ? 1000 : 150 }, () => randomName(t))];
      const rels = new Set<string>();
      mkdirSync(p.source, { recursive: true });
      for (const [i, name] of names.entries()) {
        // Half at the top, half in a folder with a hostile name of its own.
        const rel = i % 2 === 0 ? name : `-dir\n${i % 3}/${name}`;
        if (rels.has(rel)) continue;
        mkdirSync(join(p.source, rel, '..'), { recursive: true });
        writeFileSync(under(p.source, rel), `content of ${JSON.stringify(rel)}`);
        rels.add(rel);
      }
      const lockDir = join(p.root, 'locks');
      const expected = () => rawTree(p.source).then((tree) => filterTree(tree, syncable));

      const full = await syncUploads({ source: p.source, dest: p.dest, force: true, lockDir });
      expect(full.errors).toEqual([]);
      expect(full.status).toBe('ok');
      expect(treeDiff(await expected(), await rawTree(p.dest))).toEqual([]);
      expect(full.copied.sort()).toEqual([...rels].filter(syncable).sort());

      // Targeted, by every name: each changed file is updated, the filtered ones skipped.
      for (const rel of rels) writeFileSync(under(p.source, rel), `new content of ${JSON.stringify(rel)}!`);
      const targeted = await syncUploads({ source: p.source, dest: p.dest, force: true, lockDir, files: [...rels] });
      expect(targeted.errors).toEqual([]);
      expect(targeted.status).toBe('ok');
      expect(targeted.updated.sort()).toEqual([...rels].filter(syncable).sort());
      expect(treeDiff(await expected(), await rawTree(p.dest))).toEqual([]);
      expect(await tempFiles(p.dest)).toEqual([]);

      // The CLI: a leading-dash name by --file=…; the listing keeps one line per file.
      writeFileSync(join(p.source, '-rf.mp3'), 'cli');
      const env = cleanEnv({ UPLOAD_SYNC_LOCK_DIR: lockDir });
      const one = await runCli(['sync', '--source', p.source, '--dest', p.dest, '--json', '--file=-rf.mp3'], { env });
      expect(one.code).toBe(0);
      const oneResult = JSON.parse(one.stdout) as { status: string; copied: string[]; updated: string[] };
      expect([oneResult.status, ...oneResult.copied, ...oneResult.updated]).toEqual(['ok', '-rf.mp3']);
      rels.add('-rf.mp3');
      const ambiguous = await runCli(['sync', '--source', p.source, '--dest', p.dest, '--file', '-rf.mp3'], { env });
      expect(ambiguous.code).toBe(2); // a clear usage error, never a sync of something else
      expect(ambiguous.stderr).toMatch(/--file=-/);
      for (const rel of rels) writeFileSync(under(p.source, rel), 'again');
      const verbose = await runCli(['sync', '--source', p.source, '--dest', p.dest, '-v'], { env });
      expect(verbose.code).toBe(0);
      const lines = verbose.stdout.trimEnd().split('\n');
      expect(lines.slice(0, -1).every((l) => l.startsWith('  ~ '))).toBe(true); // a newline in a name never starts a line
      expect(lines).toHaveLength([...rels].filter(syncable).length + 1);
      expect(treeDiff(await expected(), await rawTree(p.dest))).toEqual([]);
    } finally {
      await p.cleanup();
    }
  }, 60_000);

  test('names that are not valid UTF-8 (an old FTP upload in Latin-1): mirrored exactly or reported, never silently skipped', async () => {
    const p = tempProject('upload-sync-fuzz-bytes-');
    try {
      mkdirSync(p.source, { recursive: true });
      const raw = [Buffer.from('caf\xe9.mp3', 'latin1'), Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe, 0x2e, 0x6d, 0x70, 0x33]), Buffer.from('ok.mp3')];
      for (const name of raw) writeFileSync(Buffer.concat([Buffer.from(`${p.source}/`), name]), Buffer.concat([Buffer.from('bytes of '), name]));
      const result = await syncUploads({ source: p.source, dest: p.dest, force: true, lockDir: join(p.root, 'locks') });
      const source = await rawTree(p.source);
      const dest = await rawTree(p.dest);
      const missing = [...source.keys()].filter((rel) => !dest.get(rel)?.equals(source.get(rel)!));
      // Each one not mirrored is reported by an error entry: a name the run could not handle is never dropped in silence.
      const reported = result.errors.filter((e) => e.path !== '').length;
      expect({ missing, reported: Math.min(reported, missing.length) }).toEqual({ missing, reported: missing.length });
      if (missing.length > 0) expect(result.status).toBe('partial');
      expect(dest.get('ok.mp3')?.toString()).toBe('bytes of ok.mp3');
    } finally {
      await p.cleanup();
    }
  });
});

describe('file names: saveUpload', () => {
  test('hostile and random names: saved, mirrored and served exactly, or refused with a clear error', async () => {
    const p = tempProject('upload-sync-fuzz-save-');
    try {
      const t = randomTools(prng(SEED ^ 0x5a7e));
      const names = [...HOSTILE_NAMES, ...Array.from({ length: SOAK ? 1000 : 150 }, () => randomName(t)), `${'a'.repeat(252)}.mp3`, ' ', '', '.', '..', 'a/b.mp3', 'x\0.mp3'];
      // Every type: the names are under test here, not the types (the default takes audio and images only).
      const common = { source: p.source, dest: p.dest, force: true, lockDir: join(p.root, 'locks'), allowedTypes: '*' };
      const route = createUploadsRoute({ root: p.root, source: p.source, dest: p.dest });
      const problems: string[] = [];
      const saved = new Set<string>();
      const outcomes: Record<string, number> = {};
      for (const [i, name] of names.entries()) {
        const folder = i % 4 === 3 ? t.pick(['-x', 'NFC é', 'NFD e\u0301', 'a/b', 'ok/../x', 'x//y', '.dot', 'sp ace']) : undefined;
        const rel = folder === undefined ? name : `${folder}/${name}`;
        // What the README says saveUpload refuses.
        const parts = [...(folder === undefined ? [] : folder.split('/')), name];
        const invalid = parts.some((s) => s === '' || s === '.' || s === '..' || s.includes('\\') || s.startsWith('.') || /[\u0000-\u001f\u007f]/.test(s) || Buffer.byteLength(s) > 255 || s.trim() !== s) || name.includes('/');
        const partial = /(\.part|\.partial|\.crdownload|\.tmp|~)$/i.test(name);
        const expected = invalid ? 'ERR_INVALID_NAME' : partial ? 'ERR_TYPE' : saved.has(rel) ? 'ERR_EXISTS' : 'saved';
        const bytes = Buffer.from(`upload ${i}: ${JSON.stringify(rel)}`);
        let outcome: string;
        try {
          const s = await saveUpload(bytes, { ...common, name, ...(folder === undefined ? {} : { folder }) });
          outcome = 'saved';
          saved.add(s.name);
          if (s.name !== rel) problems.push(`${JSON.stringify(rel)}: saved as ${JSON.stringify(s.name)}`);
          if (!(await readFile(s.path)).equals(bytes)) problems.push(`${JSON.stringify(rel)}: source bytes differ`);
          if (s.sync?.status !== 'ok') problems.push(`${JSON.stringify(rel)}: sync ${JSON.stringify(s.sync)}`);
          if (!(await readFile(under(p.dest, s.name)).catch(() => Buffer.alloc(0))).equals(bytes)) problems.push(`${JSON.stringify(rel)}: not mirrored exactly`);
          const res = await route.GET(new Request(`http://localhost${s.url}`));
          const body = Buffer.from(await res.arrayBuffer());
          if (res.status !== 200 || !body.equals(bytes)) problems.push(`${JSON.stringify(rel)}: GET ${s.url} -> ${res.status}`);
        } catch (err) {
          if (err instanceof UploadSyncError) outcome = err.code;
          else {
            outcome = `not an UploadSyncError: ${String(err)}`;
          }
        }
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
        if (outcome !== expected) problems.push(`${JSON.stringify(rel)} (seed ${SEED}): expected ${expected}, got ${outcome}`);
      }
      // eslint-disable-next-line no-console
      console.log(`reliability-fuzz: saveUpload of ${names.length} names (seed ${SEED}): ${JSON.stringify(outcomes)}`);
      expect(problems).toEqual([]);
      expect(outcomes.saved).toBeGreaterThan(50); // (many random names hold control characters: refused)
      expect(await tempFiles(p.root)).toEqual([]);
      // The mirror is exact: every saved upload, nothing else.
      expect(treeDiff(filterTree(await rawTree(p.source), syncable), await rawTree(p.dest))).toEqual([]);
    } finally {
      await p.cleanup();
    }
  }, 60_000);
});
