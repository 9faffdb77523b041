import { homedir, tmpdir } from 'node:os';
import { join, parse } from 'node:path';
import { describe, expect, test } from '@jest/globals';
import { isSyncEnabled, resolveConfig, AUDIO_EXTENSIONS } from '../src/index.js';
import { ROOT, configError, run } from './helpers.js';
import { parseExtensions, parseMode } from '../src/config/parse.js';
import { resolveRoot } from '../src/config/paths.js';

const root = join(tmpdir(), 'upload-sync-config-test');

describe('isSyncEnabled: the old scripts\' rule', () => {
  test.each<[Record<string, string>, boolean]>([
    [{}, false],
    [{ NODE_ENV: 'production' }, true],
    [{ NODE_ENV: 'development' }, false],
    [{ NODE_ENV: 'test' }, false],
    [{ ENABLE_UPLOAD_SYNC: 'true' }, true],
    [{ ENABLE_UPLOAD_SYNC: 'false' }, false],
    [{ ENABLE_UPLOAD_SYNC: '1' }, true],
    [{ ENABLE_UPLOAD_SYNC: '' }, false],
    [{ NODE_ENV: 'development', ENABLE_UPLOAD_SYNC: 'TRUE' }, true],
    [{ NODE_ENV: 'production', DISABLE_UPLOAD_SYNC: 'true' }, false],
    [{ ENABLE_UPLOAD_SYNC: 'true', DISABLE_UPLOAD_SYNC: 'true' }, false],
    [{ NODE_ENV: 'production', DISABLE_UPLOAD_SYNC: 'false' }, true],
    [{ NODE_ENV: 'production', DISABLE_UPLOAD_SYNC: '' }, true],
  ])('%j -> %s', (env, expected) => {
    expect(isSyncEnabled(env)).toBe(expected);
  });

  test('a value that is not a boolean is ERR_CONFIG naming the variable and the value', () => {
    const message = configError(() => isSyncEnabled({ DISABLE_UPLOAD_SYNC: 'maybe' }));
    expect(message).toContain('DISABLE_UPLOAD_SYNC');
    expect(message).toContain('"maybe"');
    expect(message).toMatch(/true or false/);
    expect(configError(() => isSyncEnabled({ ENABLE_UPLOAD_SYNC: 'yes please' }))).toContain('ENABLE_UPLOAD_SYNC');
  });
});

describe('paths', () => {
  test('defaults: <root>/public/uploads into <root>/.next/standalone/public/uploads', () => {
    const c = resolveConfig({}, { UPLOAD_SYNC_ROOT: root });
    expect(c.root).toBe(root);
    expect(c.source).toBe(join(root, 'public', 'uploads'));
    expect(c.dest).toBe(join(root, '.next', 'standalone', 'public', 'uploads'));
  });

  test.each([
    ['/srv/app', '/srv/app'],
    ['/srv/app/.next/standalone', '/srv/app'],
    ['/srv/app/.next/standalone/', '/srv/app'],
    ['/srv/app/standalone', '/srv/app/standalone'],
    ['/srv/app/.next', '/srv/app/.next'],
    ['/srv/app/.next/standalone/public', '/srv/app/.next/standalone/public'],
  ])('the standalone cwd rule: cwd %s -> root %s', (cwd, expected) => {
    expect(resolveRoot(cwd)).toBe(expected);
  });

  test('UPLOAD_SYNC_ROOT wins over the cwd rule; a relative root resolves against the cwd', () => {
    expect(resolveRoot('/srv/app/.next/standalone', '/data/app')).toBe('/data/app');
    expect(resolveRoot('/srv', 'app')).toBe('/srv/app');
  });

  test('relative source and dest (option or env) resolve against the root', () => {
    const c = resolveConfig({ source: 'media/in' }, { UPLOAD_SYNC_ROOT: root, UPLOAD_SYNC_DEST: 'mirror/out' });
    expect(c.source).toBe(join(root, 'media', 'in'));
    expect(c.dest).toBe(join(root, 'mirror', 'out'));
  });

  test('options win over env, env over defaults', () => {
    const env = { UPLOAD_SYNC_ROOT: root, UPLOAD_SYNC_SOURCE: '/env/src', UPLOAD_SYNC_STRATEGY: 'hardlink', UPLOAD_SYNC_DELETE: 'true' };
    const fromEnv = resolveConfig({}, env);
    expect([fromEnv.source, fromEnv.strategy, fromEnv.delete]).toEqual(['/env/src', 'hardlink', true]);
    const fromOptions = resolveConfig({ source: '/opt/src', strategy: 'copy', delete: false }, env);
    expect([fromOptions.source, fromOptions.strategy, fromOptions.delete]).toEqual(['/opt/src', 'copy', false]);
  });

  test.each<[string, Record<string, unknown>, Record<string, string>, RegExp]>([
    ['source equal to dest', { source: '/srv/x', dest: '/srv/x' }, {}, /same folder/],
    ['source equal to dest after normalizing', { source: '/srv/x/', dest: '/srv/y/../x' }, {}, /same folder/],
    ['dest inside source', { source: '/srv/up', dest: '/srv/up/mirror' }, {}, /dest .* is inside source/],
    ['source inside dest', { source: '/srv/m/up', dest: '/srv/m' }, {}, /source .* is inside dest/],
    ['dest at the filesystem root', { source: '/srv/up', dest: parse(process.cwd()).root }, {}, /filesystem root/],
    ['dest at home', { source: '/srv/up', dest: homedir() }, {}, /home folder/],
    ['an empty source option', { source: '' }, {}, /option `source`.*non-empty path/],
    ['an empty dest option', { dest: '   ' }, {}, /option `dest`.*non-empty path/],
    ['an empty UPLOAD_SYNC_DEST', {}, { UPLOAD_SYNC_DEST: '' }, /UPLOAD_SYNC_DEST.*non-empty path/],
    ['an empty UPLOAD_SYNC_ROOT', {}, { UPLOAD_SYNC_ROOT: '' }, /UPLOAD_SYNC_ROOT.*non-empty path/],
    ['a path with NUL', { dest: '/srv/a\0b' }, {}, /NUL/],
    ['a lock folder inside dest', { source: '/srv/up', dest: '/srv/m', lockDir: '/srv/m/.locks' }, {}, /lock folder inside dest/],
    ['a lock folder inside source', { source: '/srv/up', dest: '/srv/m', lockDir: '/srv/up' }, {}, /lock folder inside source/],
  ])('refuses %s', (_name, options, env, pattern) => {
    expect(configError(() => resolveConfig(options, { UPLOAD_SYNC_ROOT: root, ...env }))).toMatch(pattern);
  });

  test('the default lock folder follows TMPDIR as it changes in the process (the built package)', async () => {
    // os.tmpdir() reads the real environment, not jest's process.env: a child does this.
    const code = `const { resolveConfig } = await import(${JSON.stringify(join(ROOT, 'dist', 'index.js'))});
      const seen = [];
      for (const tmp of ['/srv/tmp-a', '/srv/tmp-b', '/srv/tmp-a']) {
        process.env.TMPDIR = tmp;
        seen.push(resolveConfig({ source: '/srv/up', dest: '/srv/mirror' }).lockDir);
      }
      console.log(JSON.stringify(seen));`;
    const r = await run(process.execPath, ['--input-type=module', '-e', code]);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual(['/srv/tmp-a/upload-sync-locks', '/srv/tmp-b/upload-sync-locks', '/srv/tmp-a/upload-sync-locks']);
  });

  test('the home folder check follows HOME as it changes in the process (the built package)', async () => {
    // jest's process.env is its own object: os.homedir() reads the real environment, so a child does this.
    const code = `const { resolveConfig } = await import(${JSON.stringify(join(ROOT, 'dist', 'index.js'))});
      const check = (dest) => { try { resolveConfig({ source: '/srv/up', dest }, { UPLOAD_SYNC_ROOT: '/srv' }); return 'ok'; } catch (err) { return err.message; } };
      const seen = [];
      for (const home of ['/srv/home-a', '/srv/home-b']) {
        process.env.HOME = home;
        seen.push(check('/srv/home-a'), check('/srv/home-b'));
      }
      console.log(JSON.stringify(seen));`;
    const r = await run(process.execPath, ['--input-type=module', '-e', code]);
    expect(r.stderr).toBe('');
    const [aAsA, bAsA, aAsB, bAsB] = JSON.parse(r.stdout) as string[];
    expect([aAsA, bAsB]).toEqual([expect.stringMatching(/home folder/), expect.stringMatching(/home folder/)]);
    expect([bAsA, aAsB]).toEqual(['ok', 'ok']);
  });
});

describe('values', () => {
  test('defaults', () => {
    const c = resolveConfig({}, { UPLOAD_SYNC_ROOT: root });
    expect(c).toMatchObject({
      enabled: false, force: false, extensions: null, strategy: 'copy', delete: false, dryRun: false,
      fileMode: null, dirMode: null, concurrency: 4, logFile: null, lockTimeoutMs: 30_000,
      stableMs: 1000, debounceMs: 200, maxWaitMs: 5000, reconcileMs: 600_000, olderThanDays: 30,
      orphansOnly: true, maxDelete: Infinity,
    });
    expect(c.lockDir).toBe(join(tmpdir(), 'upload-sync-locks'));
  });

  test('the resolved config is frozen', () => {
    const c = resolveConfig({}, { UPLOAD_SYNC_ROOT: root });
    expect(Object.isFrozen(c)).toBe(true);
    expect(() => {
      (c as { dest: string }).dest = '/';
    }).toThrow(TypeError);
  });

  test('env values are parsed', () => {
    const c = resolveConfig({}, {
      UPLOAD_SYNC_ROOT: root, UPLOAD_SYNC_EXTENSIONS: 'MP3, .flac', UPLOAD_SYNC_FILE_MODE: '664', UPLOAD_SYNC_DIR_MODE: '0o775',
      UPLOAD_SYNC_LOG_FILE: 'logs/sync.log', UPLOAD_SYNC_DEBOUNCE_MS: '50', UPLOAD_SYNC_MAX_WAIT_MS: '900', UPLOAD_SYNC_STABLE_MS: '300',
      UPLOAD_SYNC_RECONCILE_MS: '0', UPLOAD_SYNC_CLEANUP_DAYS: '7.5', UPLOAD_SYNC_MAX_DELETE: '100', UPLOAD_SYNC_LOCK_DIR: '/var/lock/us',
    });
    expect([...c.extensions!]).toEqual(['mp3', 'flac']);
    expect(c).toMatchObject({
      fileMode: 0o664, dirMode: 0o775, logFile: join(root, 'logs', 'sync.log'), debounceMs: 50, maxWaitMs: 900, stableMs: 300,
      reconcileMs: 0, olderThanDays: 7.5, maxDelete: 100, lockDir: '/var/lock/us',
    });
  });

  test('logFile: false turns off the env log file', () => {
    expect(resolveConfig({ logFile: false }, { UPLOAD_SYNC_ROOT: root, UPLOAD_SYNC_LOG_FILE: '/tmp/x.log' }).logFile).toBeNull();
  });

  test.each<[string, Record<string, unknown>, Record<string, string>, string[]]>([
    ['UPLOAD_SYNC_DEBOUNCE_MS=abc', {}, { UPLOAD_SYNC_DEBOUNCE_MS: 'abc' }, ['UPLOAD_SYNC_DEBOUNCE_MS', '"abc"', 'whole number']],
    ['UPLOAD_SYNC_STABLE_MS=-5', {}, { UPLOAD_SYNC_STABLE_MS: '-5' }, ['UPLOAD_SYNC_STABLE_MS', '"-5"', '>= 0']],
    ['UPLOAD_SYNC_MAX_WAIT_MS=1.5', {}, { UPLOAD_SYNC_MAX_WAIT_MS: '1.5' }, ['UPLOAD_SYNC_MAX_WAIT_MS', '"1.5"']],
    ['UPLOAD_SYNC_STRATEGY=zip', {}, { UPLOAD_SYNC_STRATEGY: 'zip' }, ['UPLOAD_SYNC_STRATEGY', '"zip"', '"copy" or "hardlink"']],
    ['UPLOAD_SYNC_DELETE=perhaps', {}, { UPLOAD_SYNC_DELETE: 'perhaps' }, ['UPLOAD_SYNC_DELETE', '"perhaps"']],
    ['UPLOAD_SYNC_FILE_MODE=999', {}, { UPLOAD_SYNC_FILE_MODE: '999' }, ['UPLOAD_SYNC_FILE_MODE', '"999"', 'octal']],
    ['UPLOAD_SYNC_DIR_MODE=rwx', {}, { UPLOAD_SYNC_DIR_MODE: 'rwx' }, ['UPLOAD_SYNC_DIR_MODE', '"rwx"']],
    ['UPLOAD_SYNC_EXTENSIONS=mp3,*.x y', {}, { UPLOAD_SYNC_EXTENSIONS: 'mp3,x y' }, ['UPLOAD_SYNC_EXTENSIONS', '"mp3,x y"']],
    ['UPLOAD_SYNC_CLEANUP_DAYS=soon', {}, { UPLOAD_SYNC_CLEANUP_DAYS: 'soon' }, ['UPLOAD_SYNC_CLEANUP_DAYS', '"soon"', 'days']],
    ['UPLOAD_SYNC_MAX_DELETE=0', {}, { UPLOAD_SYNC_MAX_DELETE: '0' }, ['UPLOAD_SYNC_MAX_DELETE', '"0"', '>= 1']],
    ['concurrency: 0', { concurrency: 0 }, {}, ['option `concurrency`', 'got 0', 'from 1 to 256']],
    ['concurrency: "4"', { concurrency: 'four' }, {}, ['option `concurrency`', '"four"']],
    ['debounceMs: NaN', { debounceMs: Number.NaN }, {}, ['option `debounceMs`', 'NaN']],
    ['olderThanDays: -1', { olderThanDays: -1 }, {}, ['option `olderThanDays`', '-1']],
    ['strategy: "move"', { strategy: 'move' }, {}, ['option `strategy`', '"move"']],
    ['fileMode: 0o10000', { fileMode: 0o10000 }, {}, ['option `fileMode`', '4096']],
    ['extensions: 42', { extensions: 42 }, {}, ['option `extensions`', '42']],
    ['extensions: []', { extensions: [] }, {}, ['option `extensions`', 'at least one']],
    ['logger without error()', { logger: { info() {}, warn() {} } }, {}, ['option `logger`', 'info, warn and error']],
    ['force: "yes please"', { force: 'yes please' }, {}, ['option `force`']],
  ])('%s is ERR_CONFIG naming it, the value and what is accepted', (_name, options, env, parts) => {
    const message = configError(() => resolveConfig(options as never, { UPLOAD_SYNC_ROOT: root, ...env }));
    for (const part of parts) expect(message).toContain(part);
  });

  test('an options argument that is not an object is ERR_CONFIG', () => {
    expect(configError(() => resolveConfig('fast' as never, {}))).toContain('options object');
  });
});

describe('parsers', () => {
  test.each<[unknown, string[] | null]>([
    ['*', null],
    ['mp3', ['mp3']],
    ['.MP3,flac', ['mp3', 'flac']],
    ['*.wav', ['wav']],
    [['mp3', ' Ogg '], ['mp3', 'ogg']],
    ['mp3,*', null],
    ['audio', [...AUDIO_EXTENSIONS]],
    ['audio,jpg', [...AUDIO_EXTENSIONS, 'jpg']],
  ])('parseExtensions(%j)', (input, expected) => {
    const set = parseExtensions(input, { name: 'extensions', isEnv: false });
    expect(set === null ? null : [...set]).toEqual(expected);
  });

  test('the audio preset covers the formats the platform takes', () => {
    for (const ext of ['mp3', 'm4a', 'flac', 'wav', 'ogg', 'opus', 'aac', 'webm']) expect(AUDIO_EXTENSIONS).toContain(ext);
  });

  test.each<[unknown, number]>([
    [0o775, 0o775],
    ['775', 0o775],
    ['0775', 0o775],
    ['0o664', 0o664],
    ['2775', 0o2775],
    [0, 0],
  ])('parseMode(%j)', (input, expected) => {
    expect(parseMode(input, { name: 'fileMode', isEnv: false })).toBe(expected);
  });
});
