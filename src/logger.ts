// Structured logs, as etcd writes them with zap: one JSON object per line with
// `level`, `ts` (ISO 8601) and `msg`, then the fields. `--log-format console`
// writes the same as tab-separated text for people. pino does the work.
//
// What is logged at info is what an operator needs (start, listeners, members
// coming and going, compactions, the database lost and back, alarms); nothing
// is logged periodically, so an idle server writes nothing. Passwords and
// tokens are never given to the logger.
import * as fs from 'node:fs';
import { Writable } from 'node:stream';
import pino from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS: LogLevel[] = ['debug', 'info', 'warn', 'error'];
export type LogFormat = 'json' | 'console';

export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** Whether debug lines are written (to skip building costly ones). */
  readonly debugging: boolean;
}

export interface LogOptions {
  level: LogLevel;
  format: LogFormat;
  /** "stderr", "stdout", or file paths (appended to). */
  outputs: string[];
}

/** zap's console encoder: time, level, message, then the fields as JSON, tab-separated. */
function consoleStream(out: pino.DestinationStream): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      const { level, ts, msg, ...fields } = JSON.parse(chunk.toString()) as Fields;
      const rest = Object.keys(fields).length > 0 ? `\t${JSON.stringify(fields)}` : '';
      out.write(`${ts}\t${level}\t${msg}${rest}\n`);
      done();
    },
  });
}

function destination(output: string): pino.DestinationStream {
  if (output === 'stderr') return pino.destination({ fd: 2, sync: true });
  if (output === 'stdout') return pino.destination({ fd: 1, sync: true });
  fs.closeSync(fs.openSync(output, 'a', 0o600));
  return pino.destination({ dest: output, append: true, sync: true, mkdir: false });
}

export function createLogger(opts: LogOptions): Logger {
  const outputs = (opts.outputs.length > 0 ? opts.outputs : ['stderr']).map(destination);
  const streams = outputs.map((out) => (opts.format === 'console' ? consoleStream(out) : out));
  const stream = streams.length === 1 ? streams[0] : pino.multistream(streams.map((s) => ({ stream: s as pino.DestinationStream, level: opts.level })));
  const p = pino(
    {
      level: opts.level,
      base: undefined,
      messageKey: 'msg',
      formatters: { level: (label) => ({ level: label }) },
      timestamp: () => `,"ts":"${new Date().toISOString()}"`,
    },
    stream as pino.DestinationStream,
  );
  // The message goes first among the fields, as zap writes it: {"level","ts","msg",...fields}.
  return {
    debug: (msg, fields) => p.debug({ msg, ...fields }),
    info: (msg, fields) => p.info({ msg, ...fields }),
    warn: (msg, fields) => p.warn({ msg, ...fields }),
    error: (msg, fields) => p.error({ msg, ...fields }),
    get debugging() {
      return p.isLevelEnabled('debug');
    },
  };
}

/** Writes nothing (embedders that log elsewhere, tests). */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  debugging: false,
};
