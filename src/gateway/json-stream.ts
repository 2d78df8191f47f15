// Streaming methods over HTTP/1.1, as etcd's gateway serves them: the request
// body is a sequence of JSON messages (read as they arrive); each answer is one
// line `{"result":{...}}`, flushed at once. The response starts with the first
// answer. A first message that cannot be parsed is refused with 400 and code
// 3 (etcd answers 500 there; APISIX counts any 5xx against the endpoint).
import type { Request, Response } from 'express';
import type * as protobuf from 'protobufjs';
import type { CallMeta } from '../api/context';
import { HTTP_STREAM_WINDOW_BYTES, SendWindow } from '../api/send-window';
import { toStatus } from '../errors';
import { fromJson, parseJson, syntaxError, toJson } from './json';
import { httpStatus } from './routes';
import { sendError, statusText } from './http';

export interface StreamOut {
  /** Send one answer: an object, or the JSON text of one already encoded. Returns whether more fit now. */
  send(res: object | string): boolean;
  writable(): boolean;
  /** Finish the response (keepalive streams end with their request body). */
  end(): void;
  /** Report a failure in the stream's error format and finish. */
  fail(err: unknown): void;
  /** Called when the stream, after it was full, has written out enough to take more (see SendWindow). */
  onDrain(cb: () => void): void;
}

export interface StreamCallbacks {
  request(req: Record<string, unknown>): void;
  /** The request body is complete. */
  end(): void;
  /** The client went away. */
  close(): void;
}

export interface StreamServer {
  open(out: StreamOut, meta: CallMeta): StreamCallbacks;
}

/** Splits a byte stream into top-level JSON values. */
export class JsonSplitter {
  private buf = '';
  private depth = 0;
  private inString = false;
  private escaped = false;
  private start = -1;
  private scanned = 0;

  /** Feed text; returns complete values (as text) and throws on text that cannot start a value. */
  push(text: string): string[] {
    this.buf += text;
    const out: string[] = [];
    for (let i = this.scanned; i < this.buf.length; i++) {
      const c = this.buf[i];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === '\\') this.escaped = true;
        else if (c === '"') this.inString = false;
        continue;
      }
      if (this.depth === 0 && this.start < 0) {
        if (c === ' ' || c === '\n' || c === '\r' || c === '\t') continue;
        this.start = i;
        if (c !== '{' && c !== '[') {
          // a bare value: hand it to the parser, which reports it
          out.push(this.buf.slice(i));
          this.buf = '';
          this.scanned = 0;
          this.start = -1;
          return out;
        }
      }
      if (c === '"') this.inString = true;
      else if (c === '{' || c === '[') this.depth++;
      else if (c === '}' || c === ']') {
        this.depth--;
        if (this.depth === 0) {
          out.push(this.buf.slice(this.start, i + 1));
          this.start = -1;
        }
      }
    }
    if (this.start < 0) {
      this.buf = '';
      this.scanned = 0;
    } else {
      this.buf = this.buf.slice(this.start);
      this.scanned = this.buf.length;
      this.start = 0;
    }
    return out;
  }

  /** Whatever was left unfinished when the body ended. */
  rest(): string {
    return this.start >= 0 ? this.buf : '';
  }
}

export function serveJsonStream(
  req: Request,
  res: Response,
  types: { req: protobuf.Type; res: protobuf.Type },
  server: StreamServer,
  meta: CallMeta,
): void {
  let started = false;
  let finished = false;
  const start = () => {
    if (started) return;
    started = true;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.flushHeaders();
  };
  let drained = () => undefined as void;
  const window = new SendWindow(HTTP_STREAM_WINDOW_BYTES, () => drained());
  const out: StreamOut = {
    send(answer) {
      if (finished) return false;
      start();
      const body = typeof answer === 'string' ? answer : toJson(types.res, answer as Record<string, unknown>);
      const line = `{"result":${body}}\n`;
      res.write(line, window.add(line.length));
      return window.open;
    },
    writable: () => !finished && window.open,
    end() {
      if (finished) return;
      finished = true;
      start();
      res.end();
    },
    fail(err) {
      if (finished) return;
      finished = true;
      if (!started) return sendError(res, err);
      const { code, details } = toStatus(err);
      const status = httpStatus(code);
      res.end(`{"error":{"grpc_code":${code},"http_code":${status},"message":${JSON.stringify(details)},"http_status":${JSON.stringify(statusText(status))}}}\n`);
    },
    onDrain(cb) {
      drained = cb;
    },
  };

  const callbacks = server.open(out, meta);
  const splitter = new JsonSplitter();
  let accepting = true;
  let received = 0;
  const handle = (text: string) => {
    if (!accepting) return;
    try {
      let json: unknown;
      try {
        json = parseJson(text);
      } catch {
        throw syntaxError(text);
      }
      received++;
      callbacks.request(fromJson(types.req, json));
    } catch (err) {
      // Like etcd's gateway: a bad first message fails the call; a later one stops reading.
      accepting = false;
      if (received === 0 && !started) out.fail(err);
    }
  };
  req.setEncoding('utf8');
  req.on('data', (chunk: string) => {
    try {
      for (const text of splitter.push(chunk)) handle(text);
    } catch (err) {
      handle(String(err));
    }
  });
  req.once('end', () => {
    const rest = splitter.rest();
    if (rest.trim()) handle(rest);
    if (!finished) callbacks.end();
  });
  res.once('close', () => {
    finished = true;
    callbacks.close();
  });
}
