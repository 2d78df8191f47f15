// Writes on one instance reaching a watcher on another: with polls an hour
// apart, only a wakeup (NOTIFY, or an instance's HTTP request) delivers them.
import * as assert from 'node:assert/strict';
import { b, type EtcdGrpcClient } from './grpc-client';
import { grpcWatch } from './watch-client';
import { waitFor } from './ports';

/** Puts on `writer` until one reaches a watcher on `reader`, then 20 more, which must all arrive in order. */
export async function writesWakeOtherInstance(writer: EtcdGrpcClient, reader: EtcdGrpcClient): Promise<void> {
  const w = grpcWatch(reader);
  try {
    w.send({ create_request: { key: b('n/'), range_end: b('n0') } });
    await w.waitFor(1);
    const keys = () => w.responses.flatMap((r: any) => r.events ?? []).map((e: any) => e.kv.key.toString());
    // the writer learns of the other member from its heartbeat rows (every 2 s), and on PostgreSQL
    // turns to waking it itself once one of its own NOTIFYs goes unheard: write until one arrives
    await waitFor('a first write to reach the other instance', async () => {
      await writer.put({ key: b('n/first'), value: b('x') });
      return keys().length > 0 ? true : undefined;
    }, 30000);
    // (more of the first writes may still arrive: count only the numbered ones)
    const numbered = () => keys().filter((k: string) => k !== 'n/first');
    for (let i = 0; i < 20; i++) await writer.put({ key: b(`n/${i}`), value: b(String(i)) });
    await waitFor('the other instance to deliver every event', async () => (numbered().length >= 20 ? true : undefined));
    assert.deepEqual(numbered(), Array.from({ length: 20 }, (_, i) => `n/${i}`));
  } finally {
    w.close();
  }
}
