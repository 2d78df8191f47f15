// The servers of a robustness run: the database (a private MariaDB or
// PostgreSQL server when a fault restarts it; never the machine's shared one)
// and one to three instances of this server on fixed ports, which faults kill
// and restart, freeze and thaw.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort, waitFor } from '../helpers/ports';
import { BIN } from '../helpers/spawn';
import { createMysqlDatabase, createPostgresDatabase } from '../helpers/backends';
import { startPrivateMariadb } from '../helpers/mariadb';
import { startPrivatePostgres } from '../helpers/private-postgres';

export interface Database {
  /** The --backend URL. */
  url: string;
  /** Whether several instances can share it. */
  shared: boolean;
  /** Whether a fault may kill an instance (memory loses everything on a kill, as etcd without its disk would). */
  durable: boolean;
  /** Kills the database server and starts it again after `downMs` (private servers only). */
  restart?: (downMs: number) => Promise<void>;
  destroy(): Promise<void>;
}

/** A new database on a private server; `down` stops the server as a crash would. */
async function onPrivateServer(server: { createDatabase(): Promise<string>; start(): Promise<void>; destroy(): Promise<void> }, down: () => Promise<void>): Promise<Database> {
  return {
    url: await server.createDatabase(),
    shared: true,
    durable: true,
    restart: async (downMs) => {
      await down();
      await new Promise((r) => setTimeout(r, downMs));
      await server.start();
    },
    destroy: () => server.destroy(),
  };
}

/** `kind` is memory, sqlite, mysql, postgres, or a backend URL of an empty store. */
export async function openDatabase(kind: string, privateServer: boolean): Promise<Database> {
  if (kind === 'memory') return { url: 'memory', shared: false, durable: false, destroy: async () => undefined };
  if (kind === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-adapter-robustness-'));
    return { url: `sqlite://${path.join(dir, 'state.db')}`, shared: false, durable: true, destroy: async () => fs.rmSync(dir, { recursive: true, force: true }) };
  }
  if (privateServer && kind === 'mysql') {
    const server = await startPrivateMariadb();
    return onPrivateServer(server, () => server.kill());
  }
  if (privateServer && kind === 'postgres') {
    const server = await startPrivatePostgres();
    return onPrivateServer(server, () => server.crash());
  }
  if (kind === 'mysql' || kind === 'postgres') {
    const db = await (kind === 'mysql' ? createMysqlDatabase() : createPostgresDatabase());
    return { url: db.url, shared: true, durable: true, destroy: () => db.drop() };
  }
  // a URL: the caller's own empty store
  const shared = /^(mysql|tidb|postgres|postgresql):/.test(kind);
  return { url: kind, shared, durable: kind !== 'memory', destroy: async () => undefined };
}

export class Instance {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private stderr = '';
  /** How many times the process said it took the read lease (its debug log). */
  leasesTaken = 0;
  paused = false;
  constructor(
    readonly index: number,
    readonly port: number,
    private readonly args: string[],
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  get endpoint(): string {
    return `127.0.0.1:${this.port}`;
  }
  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }
  /** The last lines the process wrote to stderr. */
  log(): string {
    return this.stderr;
  }

  static async create(index: number, args: string[]): Promise<Instance> {
    const i = new Instance(index, await freePort(), args);
    await i.start();
    return i;
  }

  async start(): Promise<void> {
    const child = spawn(process.execPath, [BIN, '--listen-client-urls', this.url, ...this.args], { env: { PATH: process.env.PATH }, stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    this.paused = false;
    child.stderr!.on('data', (d) => {
      this.leasesTaken += String(d).split('read lease taken').length - 1;
      this.stderr = (this.stderr + d).slice(-8000);
    });
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    await waitFor(`instance ${this.index} on port ${this.port} to serve`, async () => {
      if (child.exitCode !== null) throw new Error(`instance ${this.index} exited: ${this.stderr}`);
      const res = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(2000) }).catch(() => null);
      return res ? true : undefined; // 503 while the database is down still means the process serves
    }, 60000);
  }

  async kill(): Promise<void> {
    if (this.paused) this.child?.kill('SIGCONT');
    this.child?.kill('SIGKILL');
    await this.exited;
    this.child = null;
  }

  freeze(): void {
    if (this.running && !this.paused) {
      this.child!.kill('SIGSTOP');
      this.paused = true;
    }
  }

  thaw(): void {
    if (this.paused) {
      this.child!.kill('SIGCONT');
      this.paused = false;
    }
  }

  async stop(): Promise<void> {
    this.thaw();
    if (this.running) this.child!.kill('SIGTERM');
    await this.exited;
    this.child = null;
  }
}
