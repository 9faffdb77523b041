import { UploadSyncError } from '../shared/errors.js';
import type { Strategy } from '../shared/options.js';

/** The environment as `process.env` holds it. */
export type Env = Readonly<Record<string, string | undefined>>;

/** Where a value came from, for error messages: an option name or an environment variable. */
export interface Origin {
  name: string;
  isEnv: boolean;
}

export const option = (name: string): Origin => ({ name, isEnv: false });
export const envVar = (name: string): Origin => ({ name, isEnv: true });

/** The `audio` preset of the extension filter. */
export const AUDIO_EXTENSIONS: readonly string[] = Object.freeze([
  'aac', 'aif', 'aiff', 'alac', 'amr', 'flac', 'm4a', 'm4b', 'mid', 'midi', 'mka', 'mp3', 'oga',
  'ogg', 'opus', 'wav', 'weba', 'webm', 'wma',
]);

export function fail(origin: Origin, expected: string, got: unknown): never {
  const shown = typeof got === 'string' ? JSON.stringify(got) : String(got);
  const what = origin.isEnv ? `environment variable ${origin.name}` : `option \`${origin.name}\``;
  throw new UploadSyncError('ERR_CONFIG', `Invalid ${what}: expected ${expected}, got ${shown}`);
}

/** Reads an env variable; an empty string counts as unset (shells export empty variables freely). */
export function readEnv(env: Env, name: string): string | undefined {
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

export function parsePath(value: unknown, origin: Origin): string {
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
  if (isSyncDisabled(env)) return false;
  const enable = readEnv(env, 'ENABLE_UPLOAD_SYNC');
  const enabled = enable !== undefined && parseBoolean(enable, envVar('ENABLE_UPLOAD_SYNC'));
  return env.NODE_ENV?.trim() === 'production' || enabled;
}

/**
 * `DISABLE_UPLOAD_SYNC` alone: "off everywhere". The CLI's `sync` and `cleanup` obey it (a build
 * or a cron job runs them) but not `NODE_ENV`/`ENABLE_UPLOAD_SYNC`: a command typed is explicit.
 * @throws UploadSyncError `ERR_CONFIG` when it holds something that is not a boolean.
 */
export function isSyncDisabled(env: Env = process.env): boolean {
  const disable = readEnv(env, 'DISABLE_UPLOAD_SYNC');
  return disable !== undefined && parseBoolean(disable, envVar('DISABLE_UPLOAD_SYNC'));
}
