// The Snapshot stream on both transports, over the one handler in
// api/snapshot.ts: each waits for its transport to drain before the next
// 32 KiB, so a slow reader holds one chunk in memory, not the file.
import type * as grpc from '@grpc/grpc-js';
import type { ApiContext } from '../api/context';
import { sendSnapshot, type SnapshotMessage } from '../api/snapshot';
import type { StreamServer } from '../gateway/json-stream';
import type { Logger } from '../logger';
import type { AuthStore } from '../mvcc/auth-store';
import { toStatus } from '../errors';
import { callMeta, type StreamHandler } from './grpc-server';

export function snapshotGrpc(api: ApiContext, auth: AuthStore, logger: Logger): StreamHandler {
  return (rawCall) => {
    const call = rawCall as grpc.ServerWritableStream<unknown, SnapshotMessage>;
    let gone = false;
    call.on('cancelled', () => (gone = true));
    call.on('error', () => undefined);
    const send = (msg: SnapshotMessage) => new Promise<void>((resolve) => (call.write(msg) ? resolve() : call.once('drain', resolve)));
    sendSnapshot(api, auth, callMeta(call.metadata, call), logger, send, () => gone || call.destroyed).then(
      () => !gone && call.end(),
      (err) => {
        if (!gone) call.emit('error', toStatus(err));
        logger.warn('snapshot failed', { error: (err as Error).message });
      },
    );
  };
}

export function snapshotJson(api: ApiContext, auth: AuthStore, logger: Logger): StreamServer {
  return {
    open(out, meta) {
      let gone = false;
      let started = false;
      const send = (msg: SnapshotMessage) => new Promise<void>((resolve) => (out.send(msg) ? resolve() : out.onDrain(resolve)));
      return {
        request() {
          if (started) return;
          started = true;
          sendSnapshot(api, auth, meta, logger, send, () => gone).then(
            () => out.end(),
            (err) => out.fail(err),
          );
        },
        end: () => undefined,
        close: () => {
          gone = true;
        },
      };
    },
  };
}
