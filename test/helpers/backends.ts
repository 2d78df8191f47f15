// Storage backends the tests run against, each time on a fresh, empty store:
// SQLite in a temporary file, MySQL/MariaDB in a database created for the
// test and dropped after it. TEST_BACKENDS=memory,sqlite narrows the list;
// TEST_MYSQL_URL points at the server (default root@127.0.0.1:3306).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';

export type BackendKind = 'memory' | 'sqlite' | 'mysql';
const ALL: BackendKind[] = ['memory', 'sqlite', 'mysql'];

export const MYSQL_URL = process.env.TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';

export function backendsUnderTest(): BackendKind[] {
  const only = process.env.TEST_BACKENDS?.split(',').map((s) => s.trim()).filter(Boolean);
  return only ? ALL.filter((b) => only.includes(b)) : ALL;
}

export interface FreshBackend {
  /** The --backend URL of an empty store. */
  url: string;
  drop(): Promise<void>;
}

/** A new empty database on the MySQL server, named for the test. */
export async function createMysqlDatabase(): Promise<FreshBackend> {
  const name = `etcd_test_${randomBytes(6).toString('hex')}`;
  const u = new URL(MYSQL_URL);
  const conn = await mysql.createConnection({ host: u.hostname, port: Number(u.port || 3306), user: decodeURIComponent(u.username || 'root'), password: decodeURIComponent(u.password) });
  await conn.query(`CREATE DATABASE ${name}`);
  await conn.end();
  return {
    url: `${MYSQL_URL.replace(/\/+$/, '')}/${name}`,
    drop: async () => {
      const c = await mysql.createConnection({ host: u.hostname, port: Number(u.port || 3306), user: decodeURIComponent(u.username || 'root'), password: decodeURIComponent(u.password) });
      await c.query(`DROP DATABASE IF EXISTS ${name}`);
      await c.end();
    },
  };
}

export async function freshBackend(kind: BackendKind): Promise<FreshBackend> {
  switch (kind) {
    case 'memory':
      return { url: 'memory', drop: async () => undefined };
    case 'sqlite': {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-adapter-sqlite-'));
      return { url: `sqlite://${path.join(dir, 'state.db')}`, drop: async () => fs.rmSync(dir, { recursive: true, force: true }) };
    }
    case 'mysql':
      return createMysqlDatabase();
  }
}
