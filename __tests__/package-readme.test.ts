/**
 * The README as the registry and a user's node_modules show it (issue 13 point 1): every relative
 * link leads to a file the package ships (`npm pack --dry-run`), and every `#anchor` to a heading
 * of the README itself. A link to a file only the repository has is dead on the registry's page
 * and in node_modules/upload-sync.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test } from '@jest/globals';
import { ROOT, run } from './helpers.js';

/** GitHub's (and npm's) anchor of a heading: lower case, punctuation dropped, spaces to `-`. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The README's links `[text](target)`, outside code blocks. */
function links(markdown: string): string[] {
  const prose = markdown.replace(/```[\s\S]*?```/g, '');
  return [...prose.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!);
}

test('every relative link of the README leads to a shipped file or one of its own headings', async () => {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  const packed = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, timeoutMs: 120_000 });
  expect(packed.code).toBe(0);
  const shipped = (JSON.parse(packed.stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path);
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const m of readme.replace(/```[\s\S]*?```/g, '').matchAll(/^#{1,6} (.+)$/gm)) {
    const base = slug(m[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`); // a repeated heading gets -1, -2…
  }
  const all = links(readme);
  expect(all.length).toBeGreaterThan(10);
  const dead: string[] = [];
  for (const target of all) {
    if (/^[a-z]+:/i.test(target)) continue; // https:, mailto:
    const [path, anchor] = target.split('#') as [string, string | undefined];
    if (path === '') {
      if (!anchors.has(decodeURIComponent(anchor ?? ''))) dead.push(target);
      continue;
    }
    const file = path.replace(/^\.\//, '').replace(/\/$/, '');
    if (!shipped.some((s) => s === file || s.startsWith(`${file}/`))) dead.push(target);
  }
  expect(dead).toEqual([]);
});
