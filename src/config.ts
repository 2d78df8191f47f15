// Command-line flags, named as etcd names them where etcd has the flag. Each
// flag can also come from an environment variable (--max-txn-ops ->
// ETCD_MAX_TXN_OPS), as etcd allows; a flag on the command line wins.

export interface Config {
  name: string;
  dataDir: string;
  listenClientUrls: string[];
  advertiseClientUrls: string[];
  backend: string;
  maxRequestBytes: number;
  maxTxnOps: number;
  certFile: string;
  keyFile: string;
  trustedCaFile: string;
  clientCertAuth: boolean;
  /** Milliseconds between progress notifications to watchers that asked for them. */
  watchProgressNotifyInterval: number;
  /** Milliseconds between polls of the log for other instances' commits (SQL backends). */
  pollInterval: number;
  autoCompactionMode: 'periodic' | 'revision';
  autoCompactionRetention: string;
  /** Memory budget of the read cache of SQL backends, bytes; 0 turns it off. */
  readCacheBytes: number;
  /** Length of the read lease of SQL backends, ms; 0 turns it off. */
  readLease: number;
  /** Lifetime of auth tokens, seconds. */
  authTokenTtl: number;
  /** Space quota, bytes (0: etcd's default of 2 GiB). */
  quotaBackendBytes: number;
  /** How often revision-mode auto-compaction checks (not a flag: 1 minute; embedders and tests may shorten it). */
  autoCompactionCheckMs?: number;
}

type Kind = 'string' | 'urls' | 'uint' | 'bool' | 'duration';

interface Flag {
  name: string;
  key: keyof Config;
  kind: Kind;
  help: string;
  /** The default, as it would be written on the command line. */
  def: string;
}

export const FLAGS: Flag[] = [
  { name: 'name', key: 'name', kind: 'string', def: 'default', help: 'Human-readable name for this member.' },
  { name: 'data-dir', key: 'dataDir', kind: 'string', def: '', help: 'Path to the data directory (default "<name>.etcd").' },
  {
    name: 'listen-client-urls',
    key: 'listenClientUrls',
    kind: 'urls',
    def: 'http://127.0.0.1:2379',
    help: 'Comma-separated URLs to serve gRPC and the HTTP/JSON gateway on (http:// or https://).',
  },
  {
    name: 'advertise-client-urls',
    key: 'advertiseClientUrls',
    kind: 'urls',
    def: '',
    help: 'Comma-separated client URLs to advertise in the member list (default: the listen URLs).',
  },
  {
    name: 'backend',
    key: 'backend',
    kind: 'string',
    def: '',
    help: 'Storage: memory, sqlite:///path/state.db, mysql://user:pass@host:3306/db (MySQL, MariaDB) or tidb://user:pass@host:4000/db. Default: SQLite at <data-dir>/state.db.',
  },
  {
    name: 'poll-interval',
    key: 'pollInterval',
    kind: 'duration',
    def: '100ms',
    help: 'How often each instance reads the log for changes made through other instances on the same database.',
  },
  {
    name: 'read-cache-bytes',
    key: 'readCacheBytes',
    kind: 'uint',
    def: String(256 * 1024 * 1024),
    help: 'SQL backends: keep the current value of every key in memory, up to this many bytes, and answer reads from it; 0 turns it off.',
  },
  {
    name: 'read-lease',
    key: 'readLease',
    kind: 'duration',
    def: '2s',
    help: 'SQL backends: an instance alone on its database takes a lease of this length and answers linearizable reads from its cache without a query (another instance that writes waits for it to end, at most this long); 0 turns it off.',
  },
  {
    name: 'auto-compaction-mode',
    key: 'autoCompactionMode',
    kind: 'string',
    def: 'revision',
    help: '"revision": keep the last <retention> revisions; "periodic": keep <retention> of history (a duration, or hours).',
  },
  {
    name: 'auto-compaction-retention',
    key: 'autoCompactionRetention',
    kind: 'string',
    def: '10000',
    help: 'How much history automatic compaction keeps (see --auto-compaction-mode); 0 turns it off.',
  },
  {
    name: 'max-request-bytes',
    key: 'maxRequestBytes',
    kind: 'uint',
    def: '1572864',
    help: 'Maximum client write request size in bytes.',
  },
  { name: 'max-txn-ops', key: 'maxTxnOps', kind: 'uint', def: '128', help: 'Maximum number of operations permitted in a transaction.' },
  { name: 'cert-file', key: 'certFile', kind: 'string', def: '', help: 'Path to the client server TLS cert file (serves https://).' },
  { name: 'key-file', key: 'keyFile', kind: 'string', def: '', help: 'Path to the client server TLS key file.' },
  { name: 'trusted-ca-file', key: 'trustedCaFile', kind: 'string', def: '', help: 'Path to the client server TLS trusted CA cert file.' },
  { name: 'client-cert-auth', key: 'clientCertAuth', kind: 'bool', def: 'false', help: 'Require client certificates signed by --trusted-ca-file.' },
  { name: 'auth-token-ttl', key: 'authTokenTtl', kind: 'uint', def: '300', help: 'Lifetime of auth tokens, in seconds.' },
  {
    name: 'quota-backend-bytes',
    key: 'quotaBackendBytes',
    kind: 'uint',
    def: '0',
    help: 'Raise the NOSPACE alarm (and refuse writes that add data) when the store grows past this many bytes; 0 means 2 GiB.',
  },
  {
    name: 'experimental-watch-progress-notify-interval',
    key: 'watchProgressNotifyInterval',
    kind: 'duration',
    def: '10m',
    help: 'Interval of the progress notifications sent to watchers that ask for them (Go duration: 500ms, 10s, 10m).',
  },
];

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration ("1h30m", "250ms") in milliseconds. */
export function parseDuration(raw: string): number | null {
  if (raw === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(raw)) !== null) {
    total += Number(m[1]) * UNIT_MS[m[2]];
    matched = re.lastIndex;
  }
  return matched === raw.length && raw.length > 0 ? total : null;
}

export class ConfigError extends Error {}

export function envName(flag: string): string {
  return `ETCD_${flag.toUpperCase().replace(/-/g, '_')}`;
}

function convert(flag: Flag, raw: string, source: string): unknown {
  switch (flag.kind) {
    case 'string':
      return raw;
    case 'urls': {
      const urls = raw.split(',').map((u) => u.trim()).filter(Boolean);
      for (const u of urls) parseClientUrl(u, source);
      return urls;
    }
    case 'uint': {
      if (!/^\d+$/.test(raw)) throw new ConfigError(`invalid value "${raw}" for ${source}: expected a non-negative integer`);
      return Number(raw);
    }
    case 'duration': {
      const ms = parseDuration(raw);
      if (ms === null) throw new ConfigError(`invalid value "${raw}" for ${source}: expected a duration such as 500ms, 10s or 10m`);
      return ms;
    }
    case 'bool': {
      if (/^(1|t|true)$/i.test(raw)) return true;
      if (/^(0|f|false)$/i.test(raw)) return false;
      throw new ConfigError(`invalid value "${raw}" for ${source}: expected true or false`);
    }
  }
}

export interface ClientUrl {
  tls: boolean;
  host: string;
  port: number;
}

export function parseClientUrl(raw: string, source = 'URL'): ClientUrl {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(`invalid URL "${raw}" for ${source}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new ConfigError(`invalid URL "${raw}" for ${source}: the scheme must be http or https`);
  }
  if (u.pathname !== '/' && u.pathname !== '') throw new ConfigError(`invalid URL "${raw}" for ${source}: a path is not allowed`);
  if (!u.port) throw new ConfigError(`invalid URL "${raw}" for ${source}: a port is required`);
  return { tls: u.protocol === 'https:', host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) };
}

export interface Parsed {
  config: Config;
  help: boolean;
  version: boolean;
  warnings: string[];
}

/** Parses argv (without node and script) and the environment. Throws ConfigError. */
export function parseArgs(argv: string[], env: NodeJS.ProcessEnv): Parsed {
  const byName = new Map(FLAGS.map((f) => [f.name, f]));
  const given = new Map<Flag, string>();
  const warnings: string[] = [];
  let help = false;
  let version = false;

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const m = /^--?([a-z0-9-]+)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new ConfigError(`unexpected argument "${arg}" (flags start with --)`);
    const [, name, inline] = m;
    if (name === 'help' || name === 'h') {
      help = true;
      continue;
    }
    if (name === 'version') {
      version = true;
      continue;
    }
    const flag = byName.get(name);
    if (!flag) throw new ConfigError(`unknown flag --${name}`);
    let raw = inline;
    if (raw === undefined) {
      if (flag.kind === 'bool') raw = 'true';
      else if (i + 1 < argv.length) raw = argv[++i];
      else throw new ConfigError(`flag --${name} needs a value`);
    }
    given.set(flag, raw);
  }

  const values: Record<string, unknown> = {};
  for (const flag of FLAGS) {
    const envKey = envName(flag.name);
    let raw = given.get(flag);
    let source = `--${flag.name}`;
    if (raw === undefined && env[envKey] !== undefined) {
      raw = env[envKey];
      source = envKey;
    } else if (raw !== undefined && env[envKey] !== undefined) {
      warnings.push(`${envKey} is shadowed by the command-line flag --${flag.name}`);
    }
    values[flag.key] = convert(flag, raw ?? flag.def, raw === undefined ? `the default of --${flag.name}` : source);
  }
  // ETCD_ADAPTER_TRACE is ours, read by src/trace.ts
  const known = new Set([...FLAGS.map((f) => envName(f.name)), 'ETCD_ADAPTER_TRACE']);
  for (const k of Object.keys(env)) {
    if (k.startsWith('ETCD_') && !known.has(k) && !k.startsWith('ETCDCTL')) warnings.push(`unrecognized environment variable ${k}`);
  }

  const config = values as unknown as Config;
  if (!config.dataDir) config.dataDir = `${config.name}.etcd`;
  if (config.advertiseClientUrls.length === 0) config.advertiseClientUrls = config.listenClientUrls;
  if (config.listenClientUrls.length === 0) throw new ConfigError('--listen-client-urls needs at least one URL');
  if (config.maxTxnOps < 1) throw new ConfigError('--max-txn-ops must be at least 1');
  if (config.maxRequestBytes < 1) throw new ConfigError('--max-request-bytes must be at least 1');
  const wantsTls = config.listenClientUrls.some((u) => parseClientUrl(u).tls);
  if (wantsTls && (!config.certFile || !config.keyFile)) {
    throw new ConfigError('https:// listen URLs need --cert-file and --key-file');
  }
  if (config.clientCertAuth && !config.trustedCaFile) throw new ConfigError('--client-cert-auth needs --trusted-ca-file');
  if (config.autoCompactionMode !== 'periodic' && config.autoCompactionMode !== 'revision') {
    throw new ConfigError(`invalid value "${config.autoCompactionMode}" for --auto-compaction-mode: expected periodic or revision`);
  }
  retentionOf(config);
  if (config.pollInterval <= 0) throw new ConfigError('--poll-interval must be more than 0');
  return { config, help, version, warnings };
}

export type Retention = { revisions: number } | { ms: number } | null;

/** What --auto-compaction-retention means under the chosen mode (null: off). */
export function retentionOf(config: Pick<Config, 'autoCompactionMode' | 'autoCompactionRetention'>): Retention {
  const raw = config.autoCompactionRetention.trim();
  if (raw === '0' || raw === '') return null;
  if (config.autoCompactionMode === 'revision') {
    if (!/^\d+$/.test(raw)) throw new ConfigError(`invalid value "${raw}" for --auto-compaction-retention: revision mode takes a number of revisions`);
    return { revisions: Number(raw) };
  }
  // periodic: a duration, or a bare number of hours (as etcd reads it)
  const ms = /^\d+(\.\d+)?$/.test(raw) ? Number(raw) * 3_600_000 : parseDuration(raw);
  if (ms === null || ms <= 0) throw new ConfigError(`invalid value "${raw}" for --auto-compaction-retention: periodic mode takes a duration such as 1h or 30m`);
  return { ms };
}

export function usage(): string {
  const lines = ['Usage: etcd-adapter [flags]', '', 'An etcd v3 API server (gRPC and HTTP/JSON on one port) on pluggable storage.', '', 'Flags:'];
  for (const f of FLAGS) {
    const def = f.def === '' ? '' : ` (default "${f.def}")`;
    lines.push(`  --${f.name}${f.kind === 'bool' ? '' : ' <value>'}`);
    lines.push(`        ${f.help}${def}  [env ${envName(f.name)}]`);
  }
  lines.push('  --help      Show this help.', '  --version   Print the version.');
  return lines.join('\n');
}
