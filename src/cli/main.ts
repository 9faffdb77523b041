import { parseArgs } from 'node:util';
import { UploadSyncError, errorMessage } from '../shared/errors.js';
import { assets } from './assets.js';
import { cleanup } from './cleanup.js';
import { EXIT, UsageError, type Command, type Values } from './shared.js';
import { check, sync } from './sync.js';
import { watch } from './watch.js';

/** Every command; a new one is a module under src/cli/ and a line here. */
const commands: Record<string, Command> = { sync, check, cleanup, watch, assets };

function mainHelp(): string {
  return `upload-sync ${__UPLOAD_SYNC_VERSION__}: keep a Next.js standalone build's uploads served

Usage: upload-sync <command> [options]

Commands:
${Object.entries(commands)
  .map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`)
  .join('\n')}

Run 'upload-sync <command> --help' for a command's options.
Exit codes: 0 done (or disabled by the environment), 1 the run failed in part or whole, 2 usage or configuration error,
130 / 143 sync, check or cleanup stopped by SIGINT / SIGTERM (128 + the signal's number, as a shell reports it;
the files in flight are finished, no temp file is left, and a line says what was done).`;
}

/** Runs the CLI; resolves with the exit code (it never calls `process.exit` itself). */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${mainHelp()}\n`);
    return name === undefined ? EXIT.USAGE : EXIT.OK;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`${__UPLOAD_SYNC_VERSION__}\n`);
    return EXIT.OK;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  try {
    if (!command) throw new UsageError(`unknown command "${name}"`);
    let values: Values;
    try {
      ({ values } = parseArgs({ args: rest, options: command.options, strict: true, allowPositionals: false }));
    } catch (err) {
      throw new UsageError(errorMessage(err));
    }
    if (values.help) {
      process.stdout.write(`${command.usage}\n`);
      return EXIT.OK;
    }
    return await command.run(values);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`upload-sync: ${err.message}\nRun 'upload-sync ${command ? `${name} ` : ''}--help' for usage.\n`);
      return EXIT.USAGE;
    }
    if (err instanceof UploadSyncError && err.code === 'ERR_CONFIG') {
      process.stderr.write(`upload-sync: ${err.message}\n`);
      return EXIT.USAGE;
    }
    process.stderr.write(`upload-sync: ${errorMessage(err)}\n`);
    return EXIT.FAILED;
  }
}
