import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { saveUpload, UploadSyncError, type SaveUploadOptions } from '../src/next.js';
import { ROOT, cleanEnv, exists, readTree, run, tempFiles, tempProject } from './helpers.js';

let p: ReturnType<typeof tempProject>;
beforeEach(() => {
  p = tempProject('upload-sync-save-');
});
afterEach(async () => {
  await p.cleanup();
});

/** jest runs with NODE_ENV=test (sync disabled): `force` stands in for production. */
const save = (file: Parameters<typeof saveUpload>[0], extra: SaveUploadOptions = {}) =>
  saveUpload(file, { root: p.root, source: p.source, dest: p.dest, force: true, lockDir: join(p.root, 'locks'), ...extra });

/** A web stream of `total` random bytes in chunks of `size`, recording whether it was cancelled. */
function chunkedStream(total: number, size = 64 * 1024) {
  const data = randomBytes(total);
  const state = { cancelled: false, pulled: 0 };
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (state.pulled >= total) return controller.close();
      controller.enqueue(new Uint8Array(data.subarray(state.pulled, state.pulled + size)));
      state.pulled += size;
    },
    cancel() {
      state.cancelled = true;
    },
  });
  return { data, stream, state };
}

/** The UploadSyncError a call rejects with. */
async function failure(promise: Promise<unknown>): Promise<UploadSyncError> {
  const err = await promise.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(UploadSyncError);
  return err as UploadSyncError;
}

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

describe('saving', () => {
  test('a File gets a random name with its extension, is written to source and mirrored', async () => {
    const bytes = randomBytes(300_000);
    const saved = await save(new File([bytes], 'My Song.MP3', { type: 'audio/mpeg' }));
    expect(saved.name).toMatch(new RegExp(`^${UUID}\\.mp3$`));
    expect(saved.path).toBe(join(p.source, saved.name));
    expect(saved.url).toBe(`/uploads/${saved.name}`);
    expect(saved.size).toBe(300_000);
    expect(saved.sync).toMatchObject({ status: 'ok', copied: [saved.name], errors: [] });
    expect((await readFile(saved.path)).equals(bytes)).toBe(true);
    expect((await readFile(join(p.dest, saved.name))).equals(bytes)).toBe(true);
    expect(await tempFiles(p.root)).toEqual([]);
  });

  test('a web ReadableStream is streamed chunk by chunk', async () => {
    const { data, stream } = chunkedStream(5 * 1024 * 1024 + 123);
    const saved = await save(stream, { originalName: 'take 2.flac' });
    expect(saved.name).toMatch(/\.flac$/);
    expect(saved.size).toBe(data.length);
    expect((await readFile(saved.path)).equals(data)).toBe(true);
  });

  test.each<[string, () => Parameters<typeof saveUpload>[0]]>([
    ['Buffer', () => Buffer.from('buffer bytes')],
    ['Uint8Array', () => new TextEncoder().encode('buffer bytes')],
    ['ArrayBuffer', () => new TextEncoder().encode('buffer bytes').buffer as ArrayBuffer],
    ['Blob', () => new Blob(['buffer bytes'])],
    ['Node Readable', () => Readable.from([Buffer.from('buffer '), Buffer.from('bytes')])],
  ])('a %s is saved', async (_kind, make) => {
    const saved = await save(make(), { name: 'clip.wav' });
    expect(saved).toMatchObject({ name: 'clip.wav', size: 12, url: '/uploads/clip.wav' });
    expect(await readTree(p.source)).toEqual({ 'clip.wav': 'buffer bytes' });
  });

  test('a given name and folder; the url is percent-encoded', async () => {
    const saved = await save(Buffer.from('x'), { name: 'Café 曲 #1.mp3', folder: 'albums/Late Night', urlPrefix: '/media/' });
    expect(saved.name).toBe('albums/Late Night/Café 曲 #1.mp3');
    expect(saved.url).toBe('/media/albums/Late%20Night/Caf%C3%A9%20%E6%9B%B2%20%231.mp3');
    expect(saved.sync?.copied).toEqual(['albums/Late Night/Café 曲 #1.mp3']);
    expect(await readTree(p.dest)).toEqual({ 'albums/Late Night/Café 曲 #1.mp3': 'x' });
  });

  test('no name and no extension: the declared type gives one, else none', async () => {
    expect((await save(new Blob(['a'], { type: 'audio/mpeg' }))).name).toMatch(new RegExp(`^${UUID}\\.mp3$`));
    expect((await save(Buffer.from('a'), { allowedTypes: '*' })).name).toMatch(new RegExp(`^${UUID}$`));
    // An odd extension is dropped rather than let into the name.
    expect((await save(Buffer.from('a'), { originalName: 'x.mp3;.php ', allowedTypes: '*' })).name).toMatch(new RegExp(`^${UUID}$`));
  });

  test('sync: false saves without syncing; without force the environment decides (disabled under jest)', async () => {
    const quiet = await save(Buffer.from('a'), { name: 'a.mp3', sync: false });
    expect(quiet.sync).toBeNull();
    expect(await exists(join(p.dest, 'a.mp3'))).toBe(false);
    const disabled = await save(Buffer.from('b'), { name: 'b.mp3', force: false });
    expect(disabled.sync?.status).toBe('disabled');
  });

  test('a failed sync is in the result, never thrown: the upload is kept', async () => {
    await writeFile(join(p.root, '.next'), 'a file where the standalone folder should be');
    const saved = await save(Buffer.from('kept'), { name: 'kept.mp3' });
    expect(saved.sync?.status).toBe('failed');
    expect(saved.sync?.errors.length).toBeGreaterThan(0);
    expect(await readFile(join(p.source, 'kept.mp3'), 'utf8')).toBe('kept');
  });

  test.each<[string, SaveUploadOptions, RegExp]>([
    ['strategy', { strategy: 'bogus' as never }, /strategy/],
    ['lock folder', { lockDir: 'public/uploads/locks' }, /lock folder inside source/],
  ])('a bad sync setting (%s) does not refuse the upload: it is saved, and its sync result says what is wrong', async (_name, bad, pattern) => {
    const saved = await save(Buffer.from('kept'), { name: 'kept.mp3', ...bad });
    expect(saved.sync).toMatchObject({ status: 'failed', copied: [], errors: [{ path: '', code: 'ERR_CONFIG' }] });
    expect(saved.sync?.errors[0]?.message).toMatch(pattern);
    expect(await readFile(join(p.source, 'kept.mp3'), 'utf8')).toBe('kept');
    expect(await exists(join(p.dest, 'kept.mp3'))).toBe(false);
  });

  test('twenty uploads at once all land under distinct names', async () => {
    const saved = await Promise.all(Array.from({ length: 20 }, (_, i) => save(Buffer.from(`song ${i}`), { originalName: 's.ogg' })));
    expect(new Set(saved.map((s) => s.name)).size).toBe(20);
    const tree = await readTree(p.dest);
    expect(Object.values(tree).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `song ${i}`).sort());
    expect(await tempFiles(p.root)).toEqual([]);
  });

  test('from the standalone server\'s cwd (<root>/.next/standalone) it saves into <root>/public/uploads', async () => {
    const cwd = join(p.root, '.next', 'standalone');
    await mkdir(cwd, { recursive: true });
    const code = `const { saveUpload } = await import(${JSON.stringify(join(ROOT, 'dist', 'next.js'))});
      const s = await saveUpload(new Blob(['from standalone']), { name: 'a.mp3', lockDir: ${JSON.stringify(join(p.root, 'locks'))} });
      console.log(JSON.stringify({ path: s.path, status: s.sync.status }));`;
    const r = await run(process.execPath, ['--input-type=module', '-e', code], { cwd, env: cleanEnv({ NODE_ENV: 'production' }) });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ path: join(p.source, 'a.mp3'), status: 'ok' });
    expect(await readTree(p.dest)).toEqual({ 'a.mp3': 'from standalone' });
  });
});

describe('refusals leave nothing behind', () => {
  /** After a refusal: no temp file and no final file anywhere in the project. */
  const nothingLeft = async () => {
    expect(await tempFiles(p.root)).toEqual([]);
    expect(await readTree(p.source)).toEqual({});
    expect(await readTree(p.dest)).toEqual({});
  };

  test('a stream over maxBytes: ERR_TOO_LARGE while streaming, the stream cancelled', async () => {
    const { stream, state } = chunkedStream(3 * 1024 * 1024);
    const err = await failure(save(stream, { maxBytes: 1024 * 1024, originalName: 'x.mp3' }));
    expect(err.code).toBe('ERR_TOO_LARGE');
    expect(err.message).toContain('1048576');
    expect(state.cancelled).toBe(true);
    expect(state.pulled).toBeLessThan(2 * 1024 * 1024); // stopped at the limit, not after reading it all
    await nothingLeft();
  });

  test('a Blob over maxBytes is refused before a byte is written; exactly maxBytes is fine', async () => {
    const err = await failure(save(new File([randomBytes(2000)], 'a.mp3'), { maxBytes: 1999 }));
    expect(err.code).toBe('ERR_TOO_LARGE');
    await nothingLeft();
    expect((await save(new File([randomBytes(2000)], 'a.mp3'), { maxBytes: 2000 })).size).toBe(2000);
  });

  test.each<[string, SaveUploadOptions]>([
    ['../x.mp3', { name: '../x.mp3' }],
    ['a/b.mp3', { name: 'a/b.mp3' }],
    ['a\\b.mp3', { name: 'a\\b.mp3' }],
    ['/etc/passwd', { name: '/etc/passwd' }],
    ['..', { name: '..' }],
    ['.', { name: '.' }],
    ['empty', { name: '' }],
    ['dotfile', { name: '.hidden.mp3' }],
    ['our temp prefix', { name: '.upload-sync-1-2.tmp' }],
    ['NUL', { name: 'a\0b.mp3' }],
    ['newline', { name: 'a\nb.mp3' }],
    ['too long', { name: `${'é'.repeat(126)}.mp3` }],
    ['spaces around', { name: ' a.mp3' }],
    ['not a string', { name: 42 as never }],
    ['folder ..', { folder: '../outside' }],
    ['folder absolute', { folder: '/tmp' }],
    ['folder empty part', { folder: 'a//b' }],
    ['folder dot', { folder: '.git' }],
    ['folder backslash', { folder: 'a\\..\\b' }],
  ])('name or folder %s: ERR_INVALID_NAME', async (_what, options) => {
    const err = await failure(save(Buffer.from('x'), { name: 'ok.mp3', ...options }));
    expect(err.code).toBe('ERR_INVALID_NAME');
    await nothingLeft();
    expect(await exists(join(p.root, 'outside'))).toBe(false);
  });

  test.each<[string, Parameters<typeof saveUpload>[0], SaveUploadOptions]>([
    ['an .exe under allowedTypes audio', new File(['x'], 'setup.exe'), { allowedTypes: 'audio' }],
    ['an .html claiming to be audio', new File(['<script>'], 'x.html', { type: 'audio/mpeg' }), { allowedTypes: ['audio/*'] }],
    ['no extension under allowedTypes', Buffer.from('x'), { allowedTypes: ['mp3'] }],
    ['an .mp3 when only image/png is allowed', new File(['x'], 'a.mp3'), { allowedTypes: ['image/png'] }],
    ['a partial-upload name', Buffer.from('x'), { name: 'song.mp3.part' }],
    ['a .tmp original', new File(['x'], 'x.tmp'), {}],
    ['a .jpg under extensions: audio', new File(['x'], 'cover.jpg'), { extensions: 'audio' }],
  ])('%s: ERR_TYPE', async (_what, file, options) => {
    const err = await failure(save(file, options));
    expect(err.code).toBe('ERR_TYPE');
    await nothingLeft();
  });

  test.each<[string, string | string[]]>([
    ['a.flac', 'audio'],
    ['a.flac', ['audio/*']],
    ['a.flac', ['audio/flac']],
    ['a.m4a', 'mp3, .m4a'],
    ['a.png', ['image/png', 'mp3']],
  ])('%s is allowed by %j', async (name, allowedTypes) => {
    expect((await save(new File(['x'], name), { allowedTypes })).name).toMatch(new RegExp(`\\.${name.split('.')[1]}$`));
  });

  test.each(['evil.html', 'evil.svg', 'x.js', 'x.pdf', 'x.xml', 'page.xhtml', 'setup.exe', 'notes.txt'])(
    'without allowedTypes %s is refused (ERR_TYPE): an audio platform takes audio and cover art only',
    async (name) => {
      const err = await failure(save(new File(['<svg onload=alert(1)>'], name, { type: 'audio/mpeg' })));
      expect(err.code).toBe('ERR_TYPE');
      expect(err.message).toMatch(/allowed types are .*mp3.*image\/jpeg/);
      await nothingLeft();
    },
  );

  test.each(['a.mp3', 'a.flac', 'a.opus', 'a.wav', 'a.m4a', 'cover.jpg', 'cover.jpeg', 'cover.png', 'cover.webp', 'cover.avif', 'cover.gif'])(
    'without allowedTypes %s is saved',
    async (name) => {
      expect((await save(new File(['x'], name))).name).toMatch(new RegExp(`\\.${name.split('.')[1]}$`));
    },
  );

  test("allowedTypes '*' takes every type again (an .html too); '*' inside a list is refused", async () => {
    expect((await save(new File(['<p>'], 'page.html'), { allowedTypes: '*' })).name).toMatch(/\.html$/);
    expect((await save(new File(['<p>'], 'page.html'), { allowedTypes: ['*'] })).name).toMatch(/\.html$/);
    const err = await failure(save(new File(['x'], 'a.mp3'), { allowedTypes: ['mp3', '*'] }));
    expect(err.code).toBe('ERR_CONFIG');
    expect(err.message).toContain('allowedTypes');
  });

  test('a stream that fails midway: its error, no temp file', async () => {
    let n = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (n++ < 3) controller.enqueue(new Uint8Array(64 * 1024));
        else controller.error(new Error('client went away'));
      },
    });
    await expect(save(stream, { name: 'broken.mp3' })).rejects.toThrow('client went away');
    await nothingLeft();
  });

  test('an aborted upload: ERR_ABORTED, no temp file', async () => {
    const controller = new AbortController();
    let n = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (++n === 3) controller.abort();
        c.enqueue(new Uint8Array(1024));
      },
    });
    const err = await failure(save(stream, { name: 'a.mp3', signal: controller.signal }));
    expect(err.code).toBe('ERR_ABORTED');
    await nothingLeft();
  });

  test('chunks that are not bytes: ERR_CONFIG, no temp file', async () => {
    const err = await failure(save(Readable.from(['text chunks']), { name: 'a.mp3' }));
    expect(err.code).toBe('ERR_CONFIG');
    await nothingLeft();
  });

  test.each<[string, unknown, SaveUploadOptions]>([
    ['file', 'a string', {}],
    ['file', null, {}],
    ['maxBytes', Buffer.from('x'), { maxBytes: -1 }],
    ['maxBytes', Buffer.from('x'), { maxBytes: '10' as never }],
    ['allowedTypes', Buffer.from('x'), { allowedTypes: ['mp3', 'bad type!'] }],
    ['allowedTypes', Buffer.from('x'), { allowedTypes: [] }],
    ['urlPrefix', Buffer.from('x'), { urlPrefix: 'uploads' }],
  ])('a bad %s: ERR_CONFIG naming it', async (name, file, options) => {
    const err = await failure(save(file as never, options));
    expect(err.code).toBe('ERR_CONFIG');
    expect(err.message).toContain(`\`${name}\``);
    await nothingLeft();
  });

  test('an existing name: ERR_EXISTS, the old file intact; overwrite: true replaces it', async () => {
    await save(Buffer.from('first'), { name: 'same.mp3' });
    const err = await failure(save(Buffer.from('second'), { name: 'same.mp3' }));
    expect(err.code).toBe('ERR_EXISTS');
    expect(await readFile(join(p.source, 'same.mp3'), 'utf8')).toBe('first');
    const replaced = await save(Buffer.from('second'), { name: 'same.mp3', overwrite: true });
    expect(replaced.sync?.updated).toEqual(['same.mp3']);
    expect(await readTree(p.dest)).toEqual({ 'same.mp3': 'second' });
    expect(await tempFiles(p.root)).toEqual([]);
  });

  test('a folder that is a symlink leading out of the source: ERR_OUTSIDE', async () => {
    await mkdir(p.source, { recursive: true });
    await mkdir(join(p.root, 'elsewhere'));
    await symlink(join(p.root, 'elsewhere'), join(p.source, 'out'));
    const err = await failure(save(Buffer.from('x'), { name: 'a.mp3', folder: 'out' }));
    expect(err.code).toBe('ERR_OUTSIDE');
    expect(await readdir(join(p.root, 'elsewhere'))).toEqual([]);
  });
});
