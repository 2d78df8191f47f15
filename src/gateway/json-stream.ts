// Streaming methods over HTTP/1.1, as etcd's gateway serves them: the request
// body is a sequence of JSON messages (read as they arrive); each answer is one
// line `{"result":{...}}`, flushed at once. The response starts with the first
// answer. A first message that cannot be parsed is refused with 400 and code
// 3 (etcd answers 500 there; APISIX counts any 5xx against the endpoint).
import type { Request, Response } from 'express';
import type * as protobuf from 'protobufjs';
import type { CallMeta } from '../api/context';
import { HTTP_STREAM_WINDOW_BYTES, SendWindow } from '../api/send-window';
import { EtcdError, toStatus } from '../errors';
import { fromJson, parseJson, syntaxError, toJson } from './json';
import { httpStatus } from './routes';
import { drainRequest, RequestBodyTooLarge, sendError, statusText } from './http';

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

/**
 * Splits a text stream into top-level JSON values, in time linear in the
 * text: each chunk is scanned once, and the pieces of an unfinished value are
 * joined only when it is complete. A value longer than `maxChars` is refused
 * as soon as it gets there (nothing more of it is kept).
 */
export class JsonSplitter {
  private readonly pieces: string[] = [];
  private size = 0;
  private depth = 0;
  private inValue = false;
  private inString = false;
  private escaped = false;

  constructor(private readonly maxChars: number) {}

  /** Feed text; returns complete values (as text). Throws RequestBodyTooLarge past the limit. */
  push(text: string): string[] {
    const out: string[] = [];
    let from = 0; // where the current value starts in `text`
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === 0x5c) this.escaped = true;
        else if (c === 0x22) this.inString = false;
        continue;
      }
      if (!this.inValue) {
        if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
        this.inValue = true;
        from = i;
        if (c !== 0x7b && c !== 0x5b) {
          // a bare value: hand it to the parser, which reports it
          out.push(text.slice(i));
          this.reset();
          return out;
        }
      }
      if (c === 0x22) this.inString = true;
      else if (c === 0x7b || c === 0x5b) this.depth++;
      else if ((c === 0x7d || c === 0x5d) && --this.depth === 0) {
        this.add(text.slice(from, i + 1));
        out.push(this.pieces.length === 1 ? this.pieces[0] : this.pieces.join(''));
        this.reset();
      }
    }
    if (this.inValue) this.add(text.slice(from));
    return out;
  }

  private add(piece: string): void {
    this.size += piece.length;
    if (this.size > this.maxChars) {
      this.reset();
      throw new RequestBodyTooLarge(this.maxChars);
    }
    this.pieces.push(piece);
  }

  private reset(): void {
    this.pieces.length = 0;
    this.size = 0;
    this.depth = 0;
    this.inValue = false;
    this.inString = false;
    this.escaped = false;
  }

  /** Whatever was left unfinished when the body ended. */
  rest(): string {
    return this.inValue ? this.pieces.join('') : '';
  }
}

export function serveJsonStream(
  req: Request,
  res: Response,
  types: { req: protobuf.Type; res: protobuf.Type },
  server: StreamServer,
  meta: CallMeta,
  maxMessageChars: number,
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
      // as etcd's gateway writes it: the last line of the body, with no newline after it
      res.end(`{"error":{"grpc_code":${code},"http_code":${status},"message":${JSON.stringify(details)},"http_status":${JSON.stringify(statusText(status))}}}`);
    },
    onDrain(cb) {
      drained = cb;
    },
  };

  const callbacks = server.open(out, meta);
  const splitter = new JsonSplitter(maxMessageChars);
  let accepting = true;
  let received = 0;
  const handle = (text: string) => {
    if (!accepting) return;
    try {
      let json: unknown;
      try {
        json = parseJson(text);
      } catch (err) {
        throw err instanceof EtcdError ? err : syntaxError(text);
      }
      const request = fromJson(types.req, json);
      received++;
      callbacks.request(request);
    } catch (err) {
      // Like etcd's gateway: a bad first message fails the call (and ends the response);
      // a later one stops reading.
      accepting = false;
      if (received === 0) out.fail(err);
    }
  };
  req.setEncoding('utf8');
  req.on('data', (chunk: string) => {
    if (!accepting) return; // read and dropped: nothing more is parsed or kept
    try {
      for (const text of splitter.push(chunk)) handle(text);
    } catch (err) {
      // One message past the limit: the stream ends with the error, the rest is drained.
      accepting = false;
      out.fail(err);
      drainRequest(req);
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
