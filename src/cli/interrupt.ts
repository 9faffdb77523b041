import { constants } from 'node:os';

/**
 * SIGINT/SIGTERM for a command that runs to its end (`sync`, `check`, `cleanup`): the first signal
 * aborts the run through its `AbortSignal` (the copies or the removal in flight finish, nothing new
 * starts, no temp file is left); a second one ends the process at once, the default way.
 */
export interface Interrupt {
  /** Pass to `syncUploads` / `cleanupOld`. */
  readonly signal: AbortSignal;
  /** The signal received, `null` while none was. */
  readonly received: NodeJS.Signals | null;
  /** Stops listening (the default handling is back). */
  dispose(): void;
}

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/** Listens for SIGINT and SIGTERM until `dispose()`; `say` tells the user what happens on the first. */
export function onInterrupt(say: (line: string) => void): Interrupt {
  const controller = new AbortController();
  let received: NodeJS.Signals | null = null;
  const dispose = () => {
    for (const name of SIGNALS) process.removeListener(name, handler);
  };
  function handler(name: NodeJS.Signals): void {
    received = name;
    dispose(); // a second signal: Node's default, the process ends at once
    say(`${name} received: stopping after the files in flight (send it again to stop at once)`);
    controller.abort();
  }
  for (const name of SIGNALS) process.on(name, handler);
  return {
    signal: controller.signal,
    get received() {
      return received;
    },
    dispose,
  };
}

/**
 * The exit code of a run stopped by `name`: 128 + its number, as a shell reports a process killed by
 * it (130 for SIGINT, 143 for SIGTERM), so a script or a CI step sees the run did not finish.
 */
export function interruptedExitCode(name: NodeJS.Signals): number {
  return 128 + constants.signals[name];
}
