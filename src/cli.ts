// The `upload-sync` bin. Sets the exit code and lets the event loop drain, so log lines and
// stdout are flushed before the process ends.
import { main } from './cli/main.js';
import { EXIT } from './cli/shared.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`upload-sync: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = EXIT.FAILED;
  },
);
