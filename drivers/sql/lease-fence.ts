// The writers' side of the read lease (see drivers/sql/read-lease.ts).
//
// While one instance holds the lease it answers linearizable reads from its
// cache without asking the database, so nothing written through another
// instance may commit until it has stopped. Every write transaction reads the
// lease row under the revision lock. Held by another instance, the writer
// rolls back, asks the holder to give the lease up, and tries again. It may
// also take the lease away itself, once the row has shown the same holder and
// renewal number for the lease's whole length on the writer's own clock: the
// holder counts its lease from before it sent that renewal, so it stopped
// serving from the lease before then. No wall clock is compared, only
// elapsed time, as etcd's leader lease does.

/** The lease row, as the write transaction's locking read returns it. */
export interface LeaseRow {
  holder: string | null;
  seq: number;
  ms: number;
}

export function leaseRow(locked: Record<string, unknown>): LeaseRow {
  const holder = locked.lease_holder;
  return { holder: holder === null || holder === undefined ? null : String(holder), seq: Number(locked.lease_seq ?? 0), ms: Number(locked.lease_ms ?? 0) };
}

/** A write found the read lease held by another instance: roll back, wait, retry. */
export class LeaseHeld extends Error {
  constructor(readonly holder: string) {
    super(`the read lease is held by ${holder}`);
  }
}

export class LeaseFence {
  /** The foreign (holder, seq) this instance's writers have been seeing, and since when. */
  private seen: { holder: string; seq: number; since: number } | null = null;
  /** How many times writes here waited for another instance's lease (for tests and stats). */
  waits = 0;

  /** This instance's own holder id, when it holds or asks for the lease. */
  self: string | null = null;

  /**
   * What a write holding the revision lock must do: "free" (no lease but
   * ours), "clear" (a lease nobody renewed for its whole length: take it
   * away in this transaction), or "wait".
   */
  check(row: LeaseRow, now = performance.now()): 'free' | 'clear' | 'wait' {
    if (row.holder === null || row.holder === this.self) return 'free';
    const s = this.seen;
    if (s && s.holder === row.holder && s.seq === row.seq) return now - s.since >= row.ms ? 'clear' : 'wait';
    // `now` is after the locking read returned, so after that renewal committed.
    this.seen = { holder: row.holder, seq: row.seq, since: now };
    return 'wait';
  }
}
