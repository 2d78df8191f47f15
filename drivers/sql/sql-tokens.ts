// Auth tokens in the etcd_tokens table, by the SHA-256 of each token (see
// TokenStore). Plain statements outside the revision lock: a token is not
// data of the store and bumps no revision. The database's clock stamps every
// use, so instances on hosts whose clocks differ agree on how long a token
// has been idle.
import type { TokenRecord, TokenStore } from '../../src/mvcc/driver';
import type { Dialect } from './dialect';
import type { SqlClient } from './sql-client';

export class SqlTokens implements TokenStore {
  constructor(
    private readonly client: SqlClient,
    private readonly dialect: Dialect,
  ) {}

  async put(hash: Buffer, t: Omit<TokenRecord, 'idleMs'>): Promise<void> {
    const sql = this.dialect.upsert('etcd_tokens', ['hash', 'name', 'generation', 'epoch', 'used_at'], 'hash', `(?, ?, ?, ?, ${this.dialect.nowMs})`);
    await this.client.run(sql, [hash, t.user, t.generation, t.epoch]);
  }

  async get(hash: Buffer): Promise<TokenRecord | null> {
    const [row] = await this.client.all(`SELECT name, generation, epoch, ${this.dialect.nowMs} - used_at AS idle FROM etcd_tokens WHERE hash = ?`, [hash]);
    return row ? { user: String(row.name), generation: String(row.generation), epoch: String(row.epoch), idleMs: Number(row.idle) } : null;
  }

  async touch(hashes: Buffer[]): Promise<void> {
    for (let i = 0; i < hashes.length; i += 500) {
      const chunk = hashes.slice(i, i + 500);
      await this.client.run(`UPDATE etcd_tokens SET used_at = ${this.dialect.nowMs} WHERE hash IN (${chunk.map(() => '?').join(', ')})`, chunk);
    }
  }

  async dropIdle(idleMs: number): Promise<void> {
    await this.client.run(`DELETE FROM etcd_tokens WHERE used_at < ${this.dialect.nowMs} - ?`, [idleMs]);
  }
}
