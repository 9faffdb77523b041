import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import createDebug from 'debug';
import { errorMessage } from './errors.js';
import type { Logger } from './options.js';

export type Level = 'INFO' | 'WARN' | 'ERROR';

/** Where one run's messages go: `debug`, the app's logger, and the log file. */
export interface RunLog extends Logger {
  /** Resolves once every line so far is in the log file (or known lost). */
  flush(): Promise<void>;
  /** Whether an INFO line goes anywhere: a run of 300,000 copies builds no line that nobody reads. */
  readonly verbose: boolean;
  /**
   * An INFO line held back: it goes to `debug` now, and to the log file and the logger only
   * before the next INFO, WARN or ERROR line of this log (a run's start, told only if the run has
   * something to tell). A later `hold` replaces it.
   */
  hold(message: string): void;
  /** A line for `DEBUG=upload-sync:*` only (a run that changed nothing, details). */
  debug(message: string): void;
  /** Whether a line went to the log file or the logger (held lines that were let out included). */
  readonly told: boolean;
}

/** `[YYYY-MM-DD HH:MM:SS] LEVEL: message`, local time as the old scripts' `date` wrote it. */
export function formatLine(level: Level, message: string, at = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const stamp = `${at.getFullYear()}-${p(at.getMonth() + 1)}-${p(at.getDate())} ${p(at.getHours())}:${p(at.getMinutes())}:${p(at.getSeconds())}`;
  return `[${stamp}] ${level}: ${oneLine(message)}\n`;
}

/**
 * `[2026-11-29T05:41:32.123Z] LEVEL: message`: what long-running processes (the watcher under PM2)
 * print on stdout and stderr, each line with its own ISO 8601 UTC time; PM2's own `time` option
 * is not needed (and would stamp the lines twice).
 */
export function stampedLine(level: Level, message: string, at = new Date()): string {
  return `[${at.toISOString()}] ${level}: ${oneLine(message)}\n`;
}

/** One event, one line: file names may hold newlines, so control characters are escaped. */
export function oneLine(message: string): string {
  // eslint-disable-next-line no-control-regex
  return message.replace(/[\u0000-\u001f\u007f]/g, (c) => (c === '\n' ? '\\n' : c === '\r' ? '\\r' : c === '\t' ? '\\t' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

/**
 * Appends to one log file. Lines are queued and written in order, a batch per `appendFile`, which
 * opens the file for each write: a logrotate `create` or `copytruncate` never loses a line.
 */
class FileSink {
  private queue: string[] = [];
  private writing: Promise<void> = Promise.resolve();
  private warned = false;
  private madeDir = false;

  constructor(private readonly path: string) {}

  write(line: string): void {
    this.queue.push(line);
    if (this.queue.length === 1) this.writing = this.writing.then(() => this.drain());
  }

  flush(): Promise<void> {
    return this.writing;
  }

  private async drain(): Promise<void> {
    const batch = this.queue.join('');
    this.queue = [];
    if (batch === '') return;
    try {
      if (!this.madeDir) {
        await mkdir(dirname(this.path), { recursive: true });
        this.madeDir = true;
      }
      await appendFile(this.path, batch);
    } catch (err) {
      // A log that cannot be written never fails a sync: say so once, on stderr.
      if (!this.warned) {
        this.warned = true;
        process.stderr.write(`upload-sync: cannot write log file ${this.path}: ${errorMessage(err)} (lines go to DEBUG=upload-sync:* only)\n`);
      }
    }
  }
}

const sinks = new Map<string, FileSink>();

function sinkFor(path: string): FileSink {
  let sink = sinks.get(path);
  if (!sink) sinks.set(path, (sink = new FileSink(path)));
  return sink;
}

const debugs = new Map<string, createDebug.Debugger>();

/** One `debug` instance per namespace (it re-reads `DEBUG` when that changes): a run per upload need not make its own. */
function debugFor(namespace: string): createDebug.Debugger {
  let debug = debugs.get(namespace);
  if (!debug) debugs.set(namespace, (debug = createDebug(`upload-sync:${namespace}`)));
  return debug;
}

/** A log for one part of the library (`upload-sync:<namespace>`). */
export function createLog(namespace: string, logFile: string | null, logger: Logger | null): RunLog {
  const debug = debugFor(namespace);
  const sink = logFile === null ? null : sinkFor(logFile);
  let held: { message: string; at: Date } | null = null;
  let told = false;
  const write = (level: Level, message: string, at: Date) => {
    told = true;
    sink?.write(formatLine(level, message, at));
    if (logger) {
      try {
        logger[level === 'INFO' ? 'info' : level === 'WARN' ? 'warn' : 'error'](message);
      } catch {
        // An app logger that throws must not break a sync.
      }
    }
  };
  const emit = (level: Level, message: string) => {
    debug('%s %s', level, message);
    if (held !== null) {
      const { message: first, at } = held;
      held = null;
      write('INFO', first, at);
    }
    write(level, message, new Date());
  };
  return {
    info: (m) => emit('INFO', m),
    warn: (m) => emit('WARN', m),
    error: (m) => emit('ERROR', m),
    hold: (m) => {
      debug('%s %s', 'INFO', m);
      held = { message: m, at: new Date() };
    },
    debug: (m) => debug('%s %s', 'DEBUG', m),
    flush: () => sink?.flush() ?? Promise.resolve(),
    get verbose() {
      return sink !== null || logger !== null || debug.enabled;
    },
    get told() {
      return told;
    },
  };
}

/** `1.2 MB`, `345 B`: sizes for humans in log lines and CLI output. */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}
