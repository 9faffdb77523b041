import { readTree } from './helpers.js';

/**
 * `readTree` of a folder a watcher is syncing into: read again when a temp file of a copy in flight
 * vanished (renamed into place) under it.
 */
export async function readMirror(base: string): Promise<Record<string, string>> {
  for (;;) {
    try {
      return await readTree(base);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

/** The paths of a `readMirror` tree that a sync publishes: our temp files (dotfiles) of copies in flight left out. */
export const published = (tree: Record<string, string>) => Object.keys(tree).filter((rel) => !rel.split('/').some((part) => part.startsWith('.')));
