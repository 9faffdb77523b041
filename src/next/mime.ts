import mime from 'mime-types';

/**
 * Where mime-db's answer is not what a browser's `<audio>` player expects. The types a route
 * sends are what `canPlayType()` and the media-source checks know; `nosniff` is always set, so the
 * type must be right.
 */
export const AUDIO_TYPE_OVERRIDES: Readonly<Record<string, string>> = Object.freeze({
  // mime-db says `audio/x-flac`; `audio/flac` is the registered type (RFC 9639) that browsers list.
  flac: 'audio/flac',
  // mime-db says `audio/mp4` today, but older tables said `audio/x-m4a`, which Firefox does not play.
  m4a: 'audio/mp4',
  m4b: 'audio/mp4',
  // ALAC comes in an MP4 container; mime-db has no entry.
  alac: 'audio/mp4',
  // An .opus file is Opus in an Ogg container (RFC 7845). `audio/opus` (RFC 7587) names the RTP
  // payload, and Safari's canPlayType('audio/opus') is empty while it plays `audio/ogg; codecs=opus`.
  opus: 'audio/ogg',
  // mime-db says `video/webm`; uploads here are audio, and `<audio>` takes `audio/webm` at its word.
  // Pass `contentTypes: { webm: 'video/webm' }` to a route that serves video.
  webm: 'audio/webm',
  weba: 'audio/webm',
});

/** The extension of a file name, lower case, without the dot (`''` when there is none). */
export function extensionOf(name: string): string {
  const base = name.slice(name.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  return dot <= 0 ? '' : base.slice(dot + 1).toLowerCase();
}

/**
 * The bare media type (no parameters) for a file name: the caller's overrides, then ours, then
 * mime-db; `false` when none knows the extension.
 */
export function mediaTypeOf(name: string, overrides?: Readonly<Record<string, string>>): string | false {
  const ext = extensionOf(name);
  if (ext === '') return false;
  if (overrides !== undefined && Object.hasOwn(overrides, ext)) return overrides[ext]!;
  if (Object.hasOwn(AUDIO_TYPE_OVERRIDES, ext)) return AUDIO_TYPE_OVERRIDES[ext]!;
  return mime.lookup(ext);
}

/** The `Content-Type` header for a file name: text types get `charset=utf-8`; unknown ones `application/octet-stream`. */
export function contentTypeOf(name: string, overrides?: Readonly<Record<string, string>>): string {
  const type = mediaTypeOf(name, overrides);
  if (type === false) return 'application/octet-stream';
  return mime.contentType(type) || type;
}

/** The extension browsers' own names use for the audio types they send (mime-db's first pick for `audio/mpeg` is `mpga`). */
const PREFERRED_EXTENSIONS: Readonly<Record<string, string>> = Object.freeze({
  'audio/mpeg': 'mp3',
  'audio/mp3': 'mp3',
  'audio/mp4': 'm4a',
  'audio/x-m4a': 'm4a',
  'audio/aac': 'aac',
  'audio/flac': 'flac',
  'audio/x-flac': 'flac',
  'audio/wav': 'wav',
  'audio/wave': 'wav',
  'audio/x-wav': 'wav',
  'audio/ogg': 'ogg',
  'audio/opus': 'opus',
  'audio/webm': 'webm',
});

/** An extension for a declared media type (`audio/mpeg` → `mp3`), or `''`. */
export function extensionForType(type: string): string {
  const bare = type.split(';')[0]!.trim().toLowerCase();
  return PREFERRED_EXTENSIONS[bare] ?? (mime.extension(bare) || '');
}

/**
 * Raster image types a browser only ever draws: never a document, never a script (SVG is not here:
 * it is a document that runs scripts when opened from the app's origin).
 */
export const INLINE_IMAGE_TYPES: ReadonlySet<string> = new Set([
  'image/apng', 'image/avif', 'image/bmp', 'image/gif', 'image/heic', 'image/heif', 'image/jpeg', 'image/jxl',
  'image/png', 'image/tiff', 'image/vnd.microsoft.icon', 'image/webp', 'image/x-icon', 'image/x-ms-bmp',
]);

/**
 * `saveUpload`'s `allowedTypes` when none is given: what an audio platform takes (the `audio`
 * extension preset, plus raster images for cover art). Every one of them is served inline by the
 * route, and none is a document a browser could run (no HTML, SVG, XML, JS, PDF).
 */
export const DEFAULT_ALLOWED_TYPES: readonly string[] = Object.freeze(['audio', 'image/jpeg', 'image/png', 'image/webp', 'image/avif', 'image/gif']);

/** A media type, a `type/*` pattern, or `*` + `/*`: what `inlineTypes` takes. */
const TYPE_PATTERN = /^(?:\*\/\*|[a-z0-9][a-z0-9!#$&^_.+-]*\/(?:\*|[a-z0-9][a-z0-9!#$&^_.+-]*))$/;

/** Whether `value` is a valid `inlineTypes` entry (lower-cased by the caller). */
export const isTypePattern = (value: string): boolean => TYPE_PATTERN.test(value);

/**
 * Whether a file of this media type (no parameters) is served inline: audio, video and raster
 * images always; a type the route's `inlineTypes` names (exactly, or by `type/*`, or `*` + `/*`).
 * Everything else (HTML, SVG, XML, JS, PDF, text, unknown) is an attachment in a sandbox.
 */
export function isInlineType(mediaType: string, extra: ReadonlySet<string> = new Set()): boolean {
  const type = mediaType.toLowerCase();
  if (type.startsWith('audio/') || type.startsWith('video/') || INLINE_IMAGE_TYPES.has(type)) return true;
  if (extra.size === 0) return false;
  return extra.has(type) || extra.has('*/*') || extra.has(`${type.slice(0, type.indexOf('/') + 1)}*`);
}
