// After `next build`: copy public/ and .next/static into the standalone output, as Next's docs
// say (`cp -r public .next/standalone/ && cp -r .next/static .next/standalone/.next/`), but
// without public/uploads: `upload-sync sync` mirrors that folder next, atomically and incrementally.
import { cpSync, existsSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

const standalone = join('.next', 'standalone');
if (!existsSync(standalone)) throw new Error('No .next/standalone: set output: "standalone" in next.config and run next build first');

const uploads = join('public', 'uploads');
cpSync('public', join(standalone, 'public'), {
  recursive: true,
  filter: (src) => {
    const rel = relative(uploads, src);
    return rel !== '' && (rel.startsWith(`..${sep}`) || rel === '..');
  },
});
cpSync(join('.next', 'static'), join(standalone, '.next', 'static'), { recursive: true });
console.log('Copied public/ (but uploads) and .next/static into .next/standalone');
