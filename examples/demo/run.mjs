#!/usr/bin/env node
// `npm run demo`: the CLI on bundled example data, as a deploy would run it.
// A fresh project under examples/demo/work/ gets the example uploads in public/uploads; then
// `upload-sync sync` runs twice: the first copies into .next/standalone/public/uploads, the
// second finds everything current and copies nothing.
import { spawnSync } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, '..', '..', 'dist', 'cli.js');
const project = join(here, 'work');

rmSync(project, { recursive: true, force: true });
cpSync(join(here, 'public'), join(project, 'public'), { recursive: true });

function step(title, args) {
  console.log(`\n$ upload-sync ${args.join(' ')}    # ${title}`);
  const { status } = spawnSync(process.execPath, [cli, ...args, '--root', project], { stdio: 'inherit', cwd: project });
  if (status !== 0) {
    console.error(`demo: upload-sync exited with ${status}`);
    process.exit(status ?? 1);
  }
}

console.log(`Demo project: ${relative(process.cwd(), project)}/ (public/uploads holds 3 songs, a .part upload and a dotfile)`);
step('first sync: copies every song into the standalone output', ['sync']);
step('second sync: everything is current, nothing is copied', ['sync']);
step('what a sync would do now', ['check']);
console.log(`\nThe mirror is in ${relative(process.cwd(), join(project, '.next', 'standalone', 'public', 'uploads'))}/ (the .part file and the dotfile were never copied).`);
