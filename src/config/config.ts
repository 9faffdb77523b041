import { realpathSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, parse, relative, resolve, sep } from 'node:path';
import { UploadSyncError } from '../shared/errors.js';
import type { Logger, Strategy, UploadSyncOptions } from '../shared/options.js';

/** The environment as `process.env` holds it. */
export type Env = Readonly<Record<string, string | undefined>>;

/** Options and environment normalized once: absolute paths, parsed numbers, defaults applied. Frozen. */
export interface ResolvedConfig {
  /** What the enable rule says for this environment (before `force`). */
  readonly enabled: boolean;
  readonly force: boolean;
  readonly root: string;
  readonly source: string;
  readonly dest: string;
  /** Lower-case extensions without the dot; `null` means every extension. */
  readonly extensions: ReadonlySet<string> | null;
  readonly strategy: Strategy;
  readonly delete: boolean;
  readonly dryRun: boolean;
  readonly fileMode: number | null;
  readonly dirMode: number | null;
  readonly concurrency: number;
  readonly logFile: string | null;
  readonly logger: Logger | null;
  readonly lockDir: string;
  readonly lockTimeoutMs: number;
  readonly stableMs: number;
  readonly debounceMs: number;
  readonly maxWaitMs: number;
  readonly reconcileMs: number;
  readonly usePolling: boolean;
  readonly olderThanDays: number;
  readonly orphansOnly: boolean;
  /** `Infinity` when there is no cap. */
  readonly maxDelete: number;
}

/** The `audio` preset of the extension filter. */
export const AUDIO_EXTENSIONS: readonly string[] = Object.freeze([
  'aac', 'aif', 'aiff', 'alac', 'amr', 'flac', 'm4a', 'm4b', 'mid', 'midi', 'mka', 'mp3', 'oga',
  'ogg', 'opus', 'wav', 'weba', 'webm', 'wma',
]);

export const DEFAULTS = Object.freeze({
  strategy: 'copy' as Strategy,
  concurrency: 4,
  lockTimeoutMs: 30_000,
  stableMs: 1000,
  debounceMs: 200,
  maxWaitMs: 5000,
  reconcileMs: 600_000,
  olderThanDays: 30,
});

/** Where a value came from, for error messages: an option name or an environment variable. */
interface Origin {
  name: string;
  isEnv: boolean;
}

const option = (name: string): Origin => ({ name, isEnv: false });
const envVar = (name: string): Origin => ({ name, isEnv: true });

function fail(origin: Origin, expected: string, got: unknown): never {
  const shown = typeof got === 'string' ? JSON.stringify(got) : String(got);
  const what = origin.isEnv ? `environment variable ${origin.name}` : `option \`${origin.name}\``;
  throw new UploadSyncError('ERR_CONFIG', `Invalid ${what}: expected ${expected}, got ${shown}`);
}

/** Reads an env variable; an empty string counts as unset (shells export empty variables freely). */
function readEnv(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

/** `true/false`, `1/0`, `yes/no`, `on/off`, any case. */
export function parseBoolean(value: unknown, origin: Origin = option('value')): boolean {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') {
    const lower = value.trim().toLowerCase();
    if (TRUE.has(lower)) return true;
    if (FALSE.has(lower)) return false;
  }
  return fail(origin, 'true or false (also 1/0, yes/no, on/off)', value);
}

/** A whole number within bounds, from a number or a decimal string. */
export function parseInteger(
  value: unknown,
  origin: Origin,
  { min = 0, max = Number.MAX_SAFE_INTEGER, unit = '' }: { min?: number; max?: number; unit?: string } = {},
): number {
  const n = typeof value === 'string' && /^\s*-?\d+\s*$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    return fail(origin, `a whole number${unit} ${range}`, value);
  }
  return n;
}

/** A non-negative number (fractions allowed), e.g. a count of days. */
export function parseNonNegative(value: unknown, origin: Origin, unit = ''): number {
  const n = typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return fail(origin, `a number${unit} >= 0`, value);
  return n;
}

/** A permission mode: a number, or an octal string (`'775'`, `'0775'`, `'0o775'`). */
export function parseMode(value: unknown, origin: Origin): number {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0o7777) return value;
  if (typeof value === 'string') {
    const m = /^\s*(?:0o?)?([0-7]{1,4})\s*$/i.exec(value);
    if (m?.[1] !== undefined) return parseInt(m[1], 8);
  }
  return fail(origin, 'an octal mode such as "775" or "0o664" (at most 0o7777)', value);
}

export function parseStrategy(value: unknown, origin: Origin): Strategy {
  if (value === 'copy' || value === 'hardlink') return value;
  return fail(origin, '"copy" or "hardlink"', value);
}

/** `'*'` → `null` (everything); `'audio'` → the preset; a list or comma list → a set, `audio` expanding inside it. */
export function parseExtensions(value: unknown, origin: Origin): ReadonlySet<string> | null {
  const items = typeof value === 'string' ? value.split(',') : Array.isArray(value) ? value : null;
  if (items === null) return fail(origin, '"*", "audio", or a list of extensions such as ["mp3", "flac"]', value);
  const out = new Set<string>();
  for (const item of items) {
    if (typeof item !== 'string') return fail(origin, 'extensions as strings', value);
    const ext = item.trim().toLowerCase().replace(/^\*?\./, '');
    if (ext === '') continue;
    if (ext === '*') return null;
    if (ext === 'audio') AUDIO_EXTENSIONS.forEach((e) => out.add(e));
    else if (/^[a-z0-9][a-z0-9_+-]*$/.test(ext)) out.add(ext);
    else return fail(origin, '"*", "audio", or extensions made of letters and digits (e.g. "mp3,flac")', value);
  }
  if (out.size === 0) return fail(origin, '"*", "audio", or at least one extension', value);
  return out;
}

function parsePath(value: unknown, origin: Origin): string {
  if (typeof value !== 'string' || value.trim() === '') return fail(origin, 'a non-empty path', value);
  if (value.includes('\0')) return fail(origin, 'a path without NUL bytes', value);
  return value;
}

/**
 * The enable rule of the old scripts: off if `DISABLE_UPLOAD_SYNC` is true; else on if
 * `NODE_ENV=production` or `ENABLE_UPLOAD_SYNC` is true; else off.
 * @throws UploadSyncError `ERR_CONFIG` when a variable holds something that is not a boolean.
 */
export function isSyncEnabled(env: Env = process.env): boolean {
  const disable = readEnv(env, 'DISABLE_UPLOAD_SYNC');
  if (disable !== undefined && parseBoolean(disable, envVar('DISABLE_UPLOAD_SYNC'))) return false;
  const enable = readEnv(env, 'ENABLE_UPLOAD_SYNC');
  const enabled = enable !== undefined && parseBoolean(enable, envVar('ENABLE_UPLOAD_SYNC'));
  return env.NODE_ENV?.trim() === 'production' || enabled;
}

/**
 * The project root: `UPLOAD_SYNC_ROOT`, else the cwd, except that a cwd of `<x>/.next/standalone`
 * (where the standalone server runs) means `<x>`, so the mirror never becomes the source.
 */
export function resolveRoot(cwd: string, envRoot?: string): string {
  if (envRoot !== undefined) return resolve(cwd, envRoot);
  const abs = resolve(cwd);
  if (basename(abs) === 'standalone' && basename(dirname(abs)) === '.next') return dirname(dirname(abs));
  return abs;
}

/** The path with symlinks of its existing part resolved, so aliases of one folder compare equal. */
export function canonical(p: string): string {
  let existing = p;
  const rest: string[] = [];
  for (;;) {
    try {
      return join(realpathSync.native(existing), ...rest);
    } catch {
      const parent = dirname(existing);
      if (parent === existing) return p;
      rest.unshift(basename(existing));
      existing = parent;
    }
  }
}

/** True when `child` is strictly inside `parent` (both absolute). */
export function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

function checkPaths(source: string, dest: string, lockDir: string): void {
  const refuse = (message: string): never => {
    throw new UploadSyncError('ERR_CONFIG', message);
  };
  const [src, dst, lock] = [canonical(source), canonical(dest), canonical(lockDir)];
  if (parse(dst).root === dst) refuse(`Refusing to use a filesystem root as dest (${dest}); set UPLOAD_SYNC_DEST or \`dest\` to the mirror folder`);
  const home = canonical(homedir());
  if (dst === home) refuse(`Refusing to use the home folder as dest (${dest}); set UPLOAD_SYNC_DEST or \`dest\` to the mirror folder`);
  if (src === dst) refuse(`Refusing to sync: source and dest are the same folder (${source})`);
  if (isInside(dst, src)) refuse(`Refusing to sync: dest (${dest}) is inside source (${source}); it would copy itself`);
  if (isInside(src, dst)) refuse(`Refusing to sync: source (${source}) is inside dest (${dest}); deletions would reach it`);
  for (const [name, folder] of [['source', src], ['dest', dst]] as const) {
    if (lock === folder || isInside(lock, folder)) {
      refuse(`Refusing a lock folder inside ${name} (${lockDir}): set \`lockDir\` or UPLOAD_SYNC_LOCK_DIR outside the uploads folders`);
    }
  }
}

/**
 * Normalizes options and environment into one frozen config. Options win over the environment,
 * the environment over defaults.
 * @throws UploadSyncError `ERR_CONFIG`, naming the option or variable, the value and what is accepted.
 */
export function resolveConfig(options: UploadSyncOptions = {}, env: Env = process.env): ResolvedConfig {
  if (options === null || typeof options !== 'object') fail(option('options'), 'an options object', options);

  /** The option if given, else the env variable if set, else `undefined`, with its origin for errors. */
  const pick = <K extends keyof UploadSyncOptions>(key: K, variable?: string): [unknown, Origin] | undefined => {
    if (options[key] !== undefined) return [options[key], option(key)];
    const raw = variable === undefined ? undefined : readEnv(env, variable);
    return raw === undefined ? undefined : [raw, envVar(variable!)];
  };
  const get = <T>(key: keyof UploadSyncOptions, variable: string | undefined, parse: (v: unknown, o: Origin) => T, dflt: T): T => {
    const found = pick(key, variable);
    return found === undefined ? dflt : parse(found[0], found[1]);
  };
  const int = (opts?: Parameters<typeof parseInteger>[2]) => (v: unknown, o: Origin) => parseInteger(v, o, opts);
  const ms = int({ unit: ' of milliseconds' });

  // An empty path is refused (it would resolve to the cwd), so paths do not go through readEnv.
  const rawPath = (key: 'root' | 'source' | 'dest' | 'lockDir', variable: string): string | undefined => {
    if (options[key] !== undefined) return parsePath(options[key], option(key));
    const raw = env[variable];
    return raw === undefined ? undefined : parsePath(raw, envVar(variable));
  };

  const root = resolveRoot(process.cwd(), rawPath('root', 'UPLOAD_SYNC_ROOT'));
  const source = resolve(root, rawPath('source', 'UPLOAD_SYNC_SOURCE') ?? join('public', 'uploads'));
  const dest = resolve(root, rawPath('dest', 'UPLOAD_SYNC_DEST') ?? join('.next', 'standalone', 'public', 'uploads'));
  const lockDir = resolve(root, rawPath('lockDir', 'UPLOAD_SYNC_LOCK_DIR') ?? join(tmpdir(), 'upload-sync'));
  checkPaths(source, dest, lockDir);

  let logFile: string | null = null;
  if (options.logFile === false) logFile = null;
  else if (options.logFile !== undefined) logFile = resolve(root, parsePath(options.logFile, option('logFile')));
  else if (readEnv(env, 'UPLOAD_SYNC_LOG_FILE') !== undefined) {
    logFile = resolve(root, parsePath(readEnv(env, 'UPLOAD_SYNC_LOG_FILE'), envVar('UPLOAD_SYNC_LOG_FILE')));
  }

  const logger = options.logger ?? null;
  if (logger !== null && !['info', 'warn', 'error'].every((m) => typeof (logger as unknown as Record<string, unknown>)[m] === 'function')) {
    fail(option('logger'), 'an object with info, warn and error functions', logger);
  }

  const config: ResolvedConfig = {
    enabled: isSyncEnabled(env),
    force: get('force', undefined, parseBoolean, false),
    root,
    source,
    dest,
    extensions: get('extensions', 'UPLOAD_SYNC_EXTENSIONS', parseExtensions, null),
    strategy: get('strategy', 'UPLOAD_SYNC_STRATEGY', parseStrategy, DEFAULTS.strategy),
    delete: get('delete', 'UPLOAD_SYNC_DELETE', parseBoolean, false),
    dryRun: get('dryRun', undefined, parseBoolean, false),
    fileMode: get('fileMode', 'UPLOAD_SYNC_FILE_MODE', parseMode, null),
    dirMode: get('dirMode', 'UPLOAD_SYNC_DIR_MODE', parseMode, null),
    concurrency: get('concurrency', undefined, int({ min: 1, max: 256 }), DEFAULTS.concurrency),
    logFile,
    logger,
    lockDir,
    lockTimeoutMs: get('lockTimeoutMs', undefined, ms, DEFAULTS.lockTimeoutMs),
    stableMs: get('stableMs', 'UPLOAD_SYNC_STABLE_MS', ms, DEFAULTS.stableMs),
    debounceMs: get('debounceMs', 'UPLOAD_SYNC_DEBOUNCE_MS', ms, DEFAULTS.debounceMs),
    maxWaitMs: get('maxWaitMs', 'UPLOAD_SYNC_MAX_WAIT_MS', ms, DEFAULTS.maxWaitMs),
    reconcileMs: get('reconcileMs', 'UPLOAD_SYNC_RECONCILE_MS', ms, DEFAULTS.reconcileMs),
    usePolling: get('usePolling', undefined, parseBoolean, false),
    olderThanDays: get('olderThanDays', 'UPLOAD_SYNC_CLEANUP_DAYS', (v, o) => parseNonNegative(v, o, ' of days'), DEFAULTS.olderThanDays),
    orphansOnly: get('orphansOnly', undefined, parseBoolean, true),
    maxDelete: get('maxDelete', 'UPLOAD_SYNC_MAX_DELETE', int({ min: 1 }), Infinity),
  };
  return Object.freeze(config);
}
