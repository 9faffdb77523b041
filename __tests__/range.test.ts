import { describe, expect, test } from '@jest/globals';
import { contentTypeOf, extensionForType, extensionOf } from '../src/next/mime.js';
import { chooseRange, isNotModified, isPreconditionFailure, isRangeFresh, parseEtagList, validatorsOf, type RangeChoice } from '../src/next/range.js';

const whole: RangeChoice = { kind: 'whole' };
const unsat: RangeChoice = { kind: 'unsatisfiable' };
const part = (start: number, end: number): RangeChoice => ({ kind: 'partial', start, end });

describe('chooseRange: what a Range header asks of a 1000-byte file', () => {
  test.each<[string | null, RangeChoice]>([
    [null, whole],
    ['', whole],
    ['bytes=0-499', part(0, 499)],
    ['bytes=100-199', part(100, 199)],
    ['bytes=500-', part(500, 999)],
    ['bytes=-200', part(800, 999)],
    ['bytes=-1000', part(0, 999)],
    ['bytes=-5000', part(0, 999)], // a suffix longer than the file is the whole file (RFC 9110 §14.1.3)
    ['bytes=0-0', part(0, 0)],
    ['bytes=999-999', part(999, 999)],
    ['bytes=0-5000', part(0, 999)], // the end is clamped
    ['bytes=0-', part(0, 999)],
    ['bytes= 10 - 20 ', part(10, 20)], // spaces around numbers
    ['BYTES=10-20', part(10, 20)], // the unit is case-insensitive
    ['bytes=0-1,1-2', part(0, 2)], // overlapping ranges combine into one
    ['bytes=0-9,10-19', part(0, 19)], // adjacent too
    ['bytes=1000-', unsat],
    ['bytes=1000-2000', unsat],
    ['bytes=5000-6000', unsat],
    ['bytes=-0', unsat],
    ['bytes=20-10', unsat], // first > last
    ['bytes=1000-,2000-', unsat],
    ['bytes=0-9,100-109', whole], // several ranges: the whole file, as send does
    ['bytes=0-9,5000-6000', part(0, 9)], // an unsatisfiable one among them is dropped
    ['bytes=abc', whole], // malformed: ignored
    ['bytes=1-a', whole],
    ['bytes=1e3-', whole],
    ['bytes=0x10-', whole],
    ['bytes 0-9', whole],
    ['items=0-9', whole], // another unit: ignored
    ['=0-9', whole],
  ])('%j -> %j', (header, expected) => {
    expect(chooseRange(1000, header)).toEqual(expected);
  });

  test.each<[number, string, RangeChoice]>([
    [0, 'bytes=0-', unsat], // nothing to select in an empty file
    [0, 'bytes=-1', unsat],
    [1, 'bytes=0-', part(0, 0)],
    [1, 'bytes=-5', part(0, 0)],
    [200 * 1024 * 1024, 'bytes=209715100-', part(209715100, 209715199)],
  ])('size %d, %j -> %j', (size, header, expected) => {
    expect(chooseRange(size, header)).toEqual(expected);
  });
});

describe('validators', () => {
  test('a strong ETag from size and whole-ms mtime; Last-Modified floored to the second', () => {
    expect(validatorsOf(300000, 1764035232346)).toEqual({ etag: '"493e0-19ab8b1825a"', lastModified: 1764035232000 });
    expect(validatorsOf(0, 0).etag).toBe('"0-0"');
    // A time Node rounded up to the next second (…:12.9996 is 13000 ms) is dated in that second.
    expect(validatorsOf(1, 1764035233000).lastModified).toBe(1764035233000);
  });

  test.each<[string, string[]]>([
    ['"a"', ['"a"']],
    ['"a", "b"', ['"a"', '"b"']],
    ['W/"a",W/"b" , "c"', ['W/"a"', 'W/"b"', '"c"']],
    ['*', ['*']],
    ['"a,b", "c"', ['"a,b"', '"c"']],
    ['', []],
  ])('parseEtagList(%j) -> %j', (header, expected) => {
    expect(parseEtagList(header)).toEqual(expected);
  });
});

const v = validatorsOf(1000, Date.parse('2024-03-01T12:00:00.500Z'));
const LM = 'Fri, 01 Mar 2024 12:00:00 GMT';
const headers = (h: Record<string, string>) => new Headers(h);

describe('isNotModified (304)', () => {
  test.each<[Record<string, string>, boolean]>([
    [{}, false],
    [{ 'if-none-match': v.etag }, true],
    [{ 'if-none-match': `W/${v.etag}` }, true], // weak comparison
    [{ 'if-none-match': `"other", ${v.etag}` }, true],
    [{ 'if-none-match': '*' }, true],
    [{ 'if-none-match': '"other"' }, false],
    [{ 'if-modified-since': LM }, true],
    [{ 'if-modified-since': 'Fri, 01 Mar 2024 12:00:01 GMT' }, true],
    [{ 'if-modified-since': 'Fri, 01 Mar 2024 11:59:59 GMT' }, false],
    [{ 'if-modified-since': 'not a date' }, false],
    [{ 'if-none-match': '"other"', 'if-modified-since': LM }, false], // If-None-Match wins
    [{ 'if-none-match': v.etag, 'cache-control': 'no-cache' }, false], // the client asks for a fresh copy
    [{ 'if-none-match': v.etag, 'cache-control': 'max-age=0' }, true],
  ])('%j -> %s', (h, expected) => {
    expect(isNotModified(headers(h), v)).toBe(expected);
  });
});

describe('isPreconditionFailure (412)', () => {
  test.each<[Record<string, string>, boolean]>([
    [{}, false],
    [{ 'if-match': v.etag }, false],
    [{ 'if-match': '*' }, false],
    [{ 'if-match': '"other"' }, true],
    [{ 'if-match': `W/${v.etag}` }, true], // strong comparison: a weak tag never matches
    [{ 'if-unmodified-since': LM }, false],
    [{ 'if-unmodified-since': 'Fri, 01 Mar 2024 11:00:00 GMT' }, true],
    [{ 'if-unmodified-since': 'garbage' }, false],
    [{ 'if-match': v.etag, 'if-unmodified-since': 'Fri, 01 Mar 2024 11:00:00 GMT' }, false], // If-Match wins
  ])('%j -> %s', (h, expected) => {
    expect(isPreconditionFailure(headers(h), v)).toBe(expected);
  });
});

describe('isRangeFresh (If-Range)', () => {
  test.each<[string | null, boolean]>([
    [null, true],
    [v.etag, true],
    [` ${v.etag} `, true],
    ['"other"', false],
    [`W/${v.etag}`, false], // a weak tag never validates a range
    [LM, true],
    ['Fri, 01 Mar 2024 12:00:01 GMT', false], // a date must equal Last-Modified
    ['Fri, 01 Mar 2024 11:59:59 GMT', false],
    ['garbage', false],
  ])('%j -> %s', (ifRange, expected) => {
    expect(isRangeFresh(ifRange, v)).toBe(expected);
  });
});

describe('content types', () => {
  test.each<[string, string]>([
    ['song.mp3', 'audio/mpeg'],
    ['SONG.MP3', 'audio/mpeg'],
    ['a.m4a', 'audio/mp4'],
    ['a.flac', 'audio/flac'],
    ['a.wav', 'audio/wav'],
    ['a.ogg', 'audio/ogg'],
    ['a.oga', 'audio/ogg'],
    ['a.opus', 'audio/ogg'],
    ['a.aac', 'audio/aac'],
    ['a.webm', 'audio/webm'],
    ['a.weba', 'audio/webm'],
    ['cover.jpg', 'image/jpeg'],
    ['notes.txt', 'text/plain; charset=utf-8'],
    ['page.html', 'text/html; charset=utf-8'],
    ['noext', 'application/octet-stream'],
    ['weird.zzzunknown', 'application/octet-stream'],
    ['dir.mp3/file', 'application/octet-stream'],
  ])('%s -> %s', (name, expected) => {
    expect(contentTypeOf(name)).toBe(expected);
  });

  test('caller overrides win', () => {
    expect(contentTypeOf('clip.webm', { webm: 'video/webm' })).toBe('video/webm');
  });

  test.each<[string, string]>([
    ['a.mp3', 'mp3'],
    ['a.tar.GZ', 'gz'],
    ['.bashrc', ''],
    ['noext', ''],
    ['x/y.z/w', ''],
  ])('extensionOf(%j) = %j', (name, ext) => {
    expect(extensionOf(name)).toBe(ext);
  });

  test.each<[string, string]>([
    ['audio/mpeg', 'mp3'], // mime-db's first pick would be mpga
    ['audio/mp4', 'm4a'],
    ['audio/x-m4a', 'm4a'],
    ['audio/x-flac', 'flac'],
    ['audio/wav', 'wav'],
    ['audio/ogg; codecs=opus', 'ogg'],
    ['AUDIO/WEBM', 'webm'],
    ['image/png', 'png'],
    ['application/x-unknown-thing', ''],
  ])('extensionForType(%j) = %j', (type, ext) => {
    expect(extensionForType(type)).toBe(ext);
  });
});
