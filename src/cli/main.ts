import { parseArgs } from 'node:util';
import { UploadSyncError, errorMessage } from '../shared/errors.js';
import { assets } from './assets.js';
import { cleanup } from './cleanup.js';
import { EXIT, UsageError, type Command, type Options, type Values } from './shared.js';
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
Exit codes: 0 done (or disabled by the environment), 1 the run failed in part or whole (with --strict, also
a warning), 2 usage or configuration error (no command included),
130 / 143 sync, check or cleanup stopped by SIGINT / SIGTERM (128 + the signal's number, as a shell reports it;
the files in flight are finished, no temp file is left, and a line says what was done).`;
}

/** Runs the CLI; resolves with the exit code (it never calls `process.exit` itself). */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    // No command is a usage error, told as the others are: on stderr, exit 2 (as grep, diff and tar
    // do). git and npm print their help on stdout and exit 1, but 1 means "the run failed" here.
    process.stderr.write(`${mainHelp()}\n`);
    return EXIT.USAGE;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${mainHelp()}\n`);
    return EXIT.OK;
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
      ({ values } = parseArgs({ args: joinNegativeValues(rest, command.options), options: command.options, strict: true, allowPositionals: false }));
    } catch (err) {
      throw new UsageError(errorMessage(err));
    }
    if (values.help) {
      process.stdout.write(`${command.usage}\n`);
      return EXIT.OK;
    }
    return await command.run(values);
  } catch (err) {
    // `--json` promises a JSON object on stdout: a run that never started is one too.
    const json = rest.includes('--json');
    if (err instanceof UsageError || (err instanceof UploadSyncError && err.code === 'ERR_CONFIG')) {
      if (json) printFailure('ERR_CONFIG', err.message);
      const usage = err instanceof UsageError ? `\nRun 'upload-sync ${command ? `${name} ` : ''}--help' for usage.` : '';
      process.stderr.write(`upload-sync: ${err.message}${usage}\n`);
      return EXIT.USAGE;
    }
    if (json) printFailure(err instanceof UploadSyncError ? err.code : 'ERR_UNKNOWN', errorMessage(err));
    process.stderr.write(`upload-sync: ${errorMessage(err)}\n`);
    return EXIT.FAILED;
  }
}

/** What `--json` prints for a run that could not start: the `status` and `errors` of a result. */
function printFailure(code: string, message: string): void {
  process.stdout.write(`${JSON.stringify({ status: 'failed', errors: [{ path: '', code, message }] }, null, 2)}\n`);
}

/**
 * `--older-than -1` as `--older-than=-1`: parseArgs takes a value that starts with a dash for a
 * flag and fails with "argument is ambiguous"; joined, the value reaches the command's own check,
 * which names the flag and says what is accepted.
 */
function joinNegativeValues(args: string[], options: Options): string[] {
  const takesValue = (arg: string) => arg.startsWith('--') && options[arg.slice(2)]?.type === 'string';
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const next = args[i + 1];
    if (next !== undefined && /^-\d/.test(next) && takesValue(arg)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}
