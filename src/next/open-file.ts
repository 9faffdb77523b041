import { constants } from 'node:fs';
import { open, realpath, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { isInside } from '../config/paths.js';
import { errorCode } from '../shared/errors.js';

/** A regular file opened for reading, with what its validators need. */
export interface OpenFile {
  handle: FileHandle;
  size: number;
  /** Whole milliseconds, as Node's `Stats.mtime` has them (rounded from the nanosecond time). */
  mtime: number;
}

/**
 * `O_NONBLOCK`: a FIFO (or a device) in the folder must never block the open: a blocking open of
 * a FIFO waits for a writer forever and holds one of libuv's 4 threads, so 4 such requests stop
 * every file operation of the server. On a regular file the flag changes nothing. `O_NOFOLLOW`: the
 * last component is never a symlink (one swapped in after a check is refused, not followed).
 */
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

/** Errors that mean "no such file here": try the next folder, or answer 404. */
const NOT_FOUND = new Set(['ENOENT', 'ENOTDIR', 'ENAMETOOLONG', 'ELOOP', 'EISDIR', 'ENXIO']);

/**
 * Opens files inside base folders for a route. The real path of each base is resolved once and
 * kept (a miss resolves it again, so a base re-pointed elsewhere is followed). A file directly in a
 * base is opened without `realpath`: `O_NOFOLLOW` already refuses a symlink there, and the base
 * itself is real. A symlink there, or a file in a subfolder (whose folders could be symlinks
 * leading out), goes through `realpath` and a containment check first.
 */
export class FileOpener {
  readonly #bases = new Map<string, Promise<string>>();

  #realBase(base: string, fresh: boolean): Promise<string> {
    let real = fresh ? undefined : this.#bases.get(base);
    if (real === undefined) {
      real = realpath(base);
      this.#bases.set(base, real);
      real.catch(() => this.#bases.delete(base));
    }
    return real;
  }

  /** `base/segments` if it is a regular file whose real path is inside `base`; `null` otherwise. */
  async open(base: string, segments: readonly string[]): Promise<OpenFile | null> {
    try {
      let baseReal = await this.#realBase(base, false);
      if (segments.length === 1) {
        const direct = await this.#openFile(join(baseReal, segments[0]!)).catch((err: unknown) => {
          if (errorCode(err) === 'ELOOP') return 'symlink' as const;
          throw err;
        });
        if (direct !== null && direct !== 'symlink') return direct;
        if (direct === null) {
          // Missing: perhaps the base now points elsewhere.
          const again = await this.#realBase(base, true);
          if (again === baseReal) return null;
          baseReal = again;
        }
      }
      let real = await realpath(join(baseReal, ...segments));
      if (!isInside(real, baseReal)) {
        baseReal = await this.#realBase(base, true);
        if (!isInside(real, baseReal)) return null;
      }
      return await this.#openFile(real);
    } catch (err) {
      if (NOT_FOUND.has(errorCode(err))) return null;
      throw err;
    }
  }

  /** Opens `path` (never following a final symlink, never blocking); `null` when it is not a regular file. */
  async #openFile(path: string): Promise<OpenFile | null> {
    let handle: FileHandle | undefined;
    try {
      handle = await open(path, OPEN_FLAGS);
      const st = await handle.stat();
      if (!st.isFile()) {
        await handle.close();
        return null;
      }
      return { handle, size: st.size, mtime: st.mtime.getTime() };
    } catch (err) {
      await handle?.close().catch(() => undefined);
      if (errorCode(err) !== 'ELOOP' && NOT_FOUND.has(errorCode(err))) return null;
      throw err;
    }
  }
}
