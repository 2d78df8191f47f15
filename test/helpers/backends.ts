// Storage backends the tests run against, each time on a fresh, empty store:
// SQLite in a temporary file, MySQL/MariaDB in a database created for the
// test and dropped after it, PostgreSQL likewise. TEST_BACKENDS=memory,sqlite
// narrows the list; TEST_MYSQL_URL and TEST_POSTGRES_URL point at the servers
// (defaults root@127.0.0.1:3306 and postgres@127.0.0.1:5432).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import pg from 'pg';

export type BackendKind = 'memory' | 'sqlite' | 'mysql' | 'postgres';
const ALL: BackendKind[] = ['memory', 'sqlite', 'mysql', 'postgres'];

export const MYSQL_URL = process.env.TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
export const POSTGRES_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432';

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

/** Runs statements on the PostgreSQL server's maintenance database (CREATE and DROP DATABASE cannot run in a database they name). */
async function onPostgresServer(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: `${POSTGRES_URL.replace(/\/+$/, '')}/postgres` });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** A new empty database on the PostgreSQL server, named for the test. */
export async function createPostgresDatabase(): Promise<FreshBackend> {
  const name = `etcd_test_${randomBytes(6).toString('hex')}`;
  await onPostgresServer(`CREATE DATABASE ${name}`);
  return {
    url: `${POSTGRES_URL.replace(/\/+$/, '')}/${name}`,
    // WITH (FORCE): connections a killed instance left behind do not keep it
    drop: () => onPostgresServer(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

/** Backends that several instances share (the multi-instance suites run on each under test). */
export const SHARED_BACKENDS = [
  { kind: 'mysql' as const, label: 'MariaDB', create: createMysqlDatabase },
  { kind: 'postgres' as const, label: 'PostgreSQL', create: createPostgresDatabase },
];

export function sharedBackendsUnderTest(): typeof SHARED_BACKENDS {
  const kinds = backendsUnderTest();
  return SHARED_BACKENDS.filter((s) => kinds.includes(s.kind));
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
    case 'postgres':
      return createPostgresDatabase();
  }
}
