// Flow control of a watch stream, by bytes.
//
// A stream is "full" once `limit` bytes were handed to its transport and not
// yet written out; its watchers then pause (the hub replays them from the log
// later), so a client that reads slowly costs at most about `limit` bytes.
// The streams' own marks would not do: grpc-js counts messages (16), so one
// event for the 50 watchers of a stream would pause 34 of them and send each
// through a log replay; the HTTP response counts 16 KiB.
//
// Every transport reports a written message through the callback `add`
// returns; once the bytes in flight fall below half the limit after the
// stream was full, `drained` runs and paused watchers resume.

/**
 * Bytes in flight per stream before its watchers pause. gRPC streams commonly
 * carry many watchers (one response each per event); an HTTP watch carries one.
 */
export const GRPC_WATCH_WINDOW_BYTES = 256 << 10;
export const HTTP_STREAM_WINDOW_BYTES = 64 << 10;

export class SendWindow {
  private queued = 0;
  private full = false;

  constructor(
    private readonly limit: number,
    private readonly drained: () => void,
  ) {}

  /** Whether the stream takes more now. */
  get open(): boolean {
    return this.queued < this.limit;
  }

  /** Counts `bytes` handed to the transport; call the returned function once they are written. */
  add(bytes: number): () => void {
    this.queued += bytes;
    if (this.queued >= this.limit) this.full = true;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.queued -= bytes;
      if (this.full && this.queued < this.limit / 2) {
        this.full = false;
        this.drained();
      }
    };
  }
}
