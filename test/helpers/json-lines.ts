// The gateway's streams (watch, lease keepalive) are newline-delimited JSON:
// one message per line, a line split across chunks at any byte.
import type { IncomingMessage } from 'node:http';

export interface JsonLinesOptions {
  /** Called with each chunk once its complete lines have been handed over (flow control, byte counts). */
  afterChunk?: (chunk: string) => void;
  /** At the end of the body, parse what follows the last newline too. */
  flushAtEnd?: boolean;
}

/** Hands `onMessage` each parsed line of `res` as it arrives; blank lines are skipped. */
export function onJsonLines(res: IncomingMessage, onMessage: (msg: any) => void, opts: JsonLinesOptions = {}): void {
  let buf = '';
  res.setEncoding('utf8');
  res.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim()) onMessage(JSON.parse(line));
    }
    opts.afterChunk?.(chunk);
  });
  if (opts.flushAtEnd) {
    res.on('end', () => {
      if (buf.trim()) onMessage(JSON.parse(buf));
    });
  }
}
