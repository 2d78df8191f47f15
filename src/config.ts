// Command-line flags, named as etcd names them where etcd has the flag. Each
// flag can also come from an environment variable (--max-txn-ops ->
// ETCD_MAX_TXN_OPS), as etcd allows; a flag on the command line wins. With
// --config-file, etcd's YAML configuration file gives them instead (etcd's
// rule: the other flags and the environment are then ignored).
import * as fs from 'node:fs';
import YAML from 'yaml';
import { LOG_LEVELS, type LogFormat, type LogLevel } from './logger';

export interface Config {
  name: string;
  dataDir: string;
  listenClientUrls: string[];
  advertiseClientUrls: string[];
  /** Peer URLs shown in the member list (nothing listens on them: there is no peer traffic). */
  initialAdvertisePeerUrls: string[];
  listenPeerUrls: string[];
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
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** "stderr", "stdout" or file paths. */
  logOutputs: string[];
  /** Extra listeners serving only /metrics and the health paths. */
  listenMetricsUrls: string[];
  /** etcd's --cors: origins allowed to call the client URLs from a browser ("*" or empty: any). */
  cors: string;
  /** A request slower than this (ms) is logged at warn, as etcd's "apply request took too long". */
  warningApplyDuration: number;
  /** etcd's --metrics: basic or extensive (the same here); off counts nothing (to measure what counting costs). */
  metrics: 'basic' | 'extensive' | 'off';
  /** An etcd snapshot to load into the (empty) store before serving. */
  initialSnapshot: string;
}

type Kind = 'string' | 'urls' | 'uint' | 'bool' | 'duration' | 'list';

interface Flag {
  name: string;
  /** Other names for the same flag (etcd's later names, or earlier ones). */
  aliases?: string[];
  key: keyof Config;
  kind: Kind;
  help: string;
  /** The default, as it would be written on the command line. */
  def: string;
}

export const FLAGS: Flag[] = [
  { name: 'name', key: 'name', kind: 'string', def: 'default', help: 'Human-readable name for this member.' },
  { name: 'initial-snapshot', key: 'initialSnapshot', kind: 'string', def: '', help: 'An etcd snapshot file (etcdctl snapshot save) to load into the store before serving; the store must be empty (memory: always).' },
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
    name: 'initial-advertise-peer-urls',
    key: 'initialAdvertisePeerUrls',
    kind: 'urls',
    def: '',
    help: 'Peer URLs to show in the member list (default: --listen-peer-urls, else the advertised client URLs). There is no peer traffic: nothing listens on them.',
  },
  {
    name: 'listen-peer-urls',
    key: 'listenPeerUrls',
    kind: 'urls',
    def: '',
    help: "Accepted for etcd's configurations; shown as the peer URLs when --initial-advertise-peer-urls is not given. Nothing listens on them.",
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
    aliases: ['watch-progress-notify-interval'],
    key: 'watchProgressNotifyInterval',
    kind: 'duration',
    def: '10m',
    help: 'Interval of the progress notifications sent to watchers that ask for them (Go duration: 500ms, 10s, 10m). etcd 3.6 names it --watch-progress-notify-interval; both work.',
  },
  {
    name: 'metrics',
    key: 'metrics',
    kind: 'string',
    def: 'basic',
    help: 'Prometheus metrics on /metrics: basic or extensive (the same here), or off (nothing counted).',
  },
  {
    name: 'listen-metrics-urls',
    key: 'listenMetricsUrls',
    kind: 'urls',
    def: '',
    help: 'Comma-separated URLs to serve /metrics, /health, /livez and /readyz on, besides every client URL (http:// or https://).',
  },
  {
    name: 'cors',
    key: 'cors',
    kind: 'string',
    def: '*',
    help: 'Comma-separated origins allowed for CORS (cross-origin requests from browsers) on the client URLs; empty or * allows any, as etcd.',
  },
  { name: 'log-level', key: 'logLevel', kind: 'string', def: 'info', help: 'Log level: debug, info, warn or error.' },
  {
    name: 'log-format',
    key: 'logFormat',
    kind: 'string',
    def: 'json',
    help: 'Log format: json (one object per line, as etcd\'s zap logger) or console (tab-separated text).',
  },
  {
    name: 'logger',
    key: 'logFormat',
    kind: 'string',
    def: '',
    help: 'etcd 3.4/3.5\'s name for the logger: zap (JSON lines) or capnslog (text); sets --log-format.',
  },
  { name: 'log-outputs', key: 'logOutputs', kind: 'list', def: 'stderr', help: 'Where logs go: stderr, stdout, default (stderr) or file paths, comma-separated.' },
  {
    name: 'warning-apply-duration',
    aliases: ['experimental-warning-apply-duration'],
    key: 'warningApplyDuration',
    kind: 'duration',
    def: '100ms',
    help: 'A request that takes longer than this is logged at warn ("apply request took too long"), as etcd does.',
  },
];

/** --config-file: read first, and then the other flags and the environment are not. */
const CONFIG_FILE = 'config-file';

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
    case 'list':
      return raw
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean)
        .map((x) => (x === 'default' ? 'stderr' : x));
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

/** Every name a flag answers to. */
function namesOf(f: Flag): string[] {
  return [f.name, ...(f.aliases ?? [])];
}

/** Parses argv (without node and script) and the environment. Throws ConfigError. */
export function parseArgs(argv: string[], env: NodeJS.ProcessEnv): Parsed {
  const byName = new Map(FLAGS.flatMap((f) => namesOf(f).map((n) => [n, f] as const)));
  let given = new Map<Flag, string>();
  const warnings: string[] = [];
  let help = false;
  let version = false;
  let configFile: string | undefined;

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
    if (name === CONFIG_FILE) {
      configFile = inline ?? argv[++i];
      if (configFile === undefined) throw new ConfigError(`flag --${name} needs a value`);
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
  configFile ??= env[envName(CONFIG_FILE)];

  let useEnv = true;
  if (configFile !== undefined) {
    if (given.size > 0) warnings.push(`--${CONFIG_FILE} is given: the other flags (${[...given.keys()].map((f) => `--${f.name}`).join(', ')}) are ignored, as etcd ignores them`);
    given = readConfigFile(configFile, byName, warnings);
    useEnv = false;
  }

  const values: Record<string, unknown> = {};
  for (const flag of FLAGS) {
    const envKeys = namesOf(flag).map(envName);
    let raw = given.get(flag);
    let source = `--${flag.name}`;
    const fromEnv = useEnv ? envKeys.find((k) => env[k] !== undefined) : undefined;
    if (raw === undefined && fromEnv !== undefined) {
      raw = env[fromEnv];
      source = fromEnv;
    } else if (raw !== undefined && fromEnv !== undefined) {
      warnings.push(`${fromEnv} is shadowed by the command-line flag --${flag.name}`);
    }
    if (raw === undefined) {
      // Several flags may set one setting (--log-format, then --logger): a default never replaces a value.
      if (flag.key in values) continue;
      raw = flag.def;
      source = `the default of --${flag.name}`;
    }
    values[flag.key] = flag.name === 'logger' ? loggerFormat(raw) : convert(flag, raw, source);
  }
  if (useEnv) {
    // ETCD_ADAPTER_TRACE is ours, read by src/trace.ts
    const known = new Set([...FLAGS.flatMap((f) => namesOf(f).map(envName)), envName(CONFIG_FILE), 'ETCD_ADAPTER_TRACE']);
    for (const k of Object.keys(env)) {
      if (k.startsWith('ETCD_') && !known.has(k) && !k.startsWith('ETCDCTL')) warnings.push(`unrecognized environment variable ${k}`);
    }
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
  if (!LOG_LEVELS.includes(config.logLevel)) throw new ConfigError(`invalid value "${config.logLevel}" for --log-level: expected ${LOG_LEVELS.join(', ')}`);
  if (config.logFormat !== 'json' && config.logFormat !== 'console') throw new ConfigError(`invalid value "${config.logFormat}" for --log-format: expected json or console`);
  if (!['basic', 'extensive', 'off'].includes(config.metrics)) throw new ConfigError(`invalid value "${config.metrics}" for --metrics: expected basic, extensive or off`);
  return { config, help, version, warnings };
}

/** etcd 3.4/3.5's --logger: zap writes JSON lines, capnslog text. */
function loggerFormat(raw: string): LogFormat {
  if (raw === 'zap') return 'json';
  if (raw === 'capnslog') return 'console';
  throw new ConfigError(`invalid value "${raw}" for --logger: expected zap or capnslog`);
}

/** etcd's YAML sections whose keys are flag names (client-transport-security: cert-file, ...). */
const SECTIONS = new Set(['client-transport-security']);
/** Sections etcd has that mean nothing here (peer traffic): ignored, said once. */
const IGNORED_SECTIONS = new Set(['peer-transport-security']);

/**
 * etcd's configuration file: YAML whose keys are flag names. Values may be
 * YAML scalars or lists (joined with commas); empty values mean the default.
 * Durations as strings ("10m") or, as etcd's Go decoder reads them, numbers
 * of nanoseconds. Keys this server does not have are warned about, not fatal.
 */
function readConfigFile(file: string, byName: Map<string, Flag>, warnings: string[]): Map<Flag, string> {
  let doc: unknown;
  try {
    doc = YAML.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`cannot read --${CONFIG_FILE} ${file}: ${(err as Error).message}`);
  }
  if (doc === null || doc === undefined) doc = {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`--${CONFIG_FILE} ${file}: expected a YAML mapping of flag names to values`);
  const given = new Map<Flag, string>();
  const unused: string[] = [];
  const take = (key: string, value: unknown) => {
    if (value === null || value === undefined || value === '') return;
    const flag = byName.get(key);
    if (!flag) return void unused.push(key);
    let raw: string;
    if (Array.isArray(value)) raw = value.map(String).join(',');
    else if (flag.kind === 'duration' && typeof value === 'number') raw = `${value / 1e6}ms`;
    else if (typeof value === 'object') throw new ConfigError(`--${CONFIG_FILE} ${file}: "${key}" must be a value, not a mapping`);
    else raw = String(value);
    given.set(flag, raw);
  };
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    if (SECTIONS.has(key) && value && typeof value === 'object') {
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) take(k, v);
    } else if (IGNORED_SECTIONS.has(key)) {
      unused.push(key);
    } else {
      take(key, value);
    }
  }
  if (unused.length > 0) warnings.push(`--${CONFIG_FILE} ${file}: ignored settings this server does not have: ${unused.join(', ')}`);
  return given;
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
  const lines = ['Usage: etcd-adapter [flags]', '       etcd-adapter snapshot restore|save FILE [--backend URL]  (etcd snapshot files; see "etcd-adapter snapshot --help")',
    '       etcd-adapter migrate --from http://HOST:2379 --backend URL  (from a running etcd; see "etcd-adapter migrate --help")', '', 'An etcd v3 API server (gRPC and HTTP/JSON on one port) on pluggable storage.', '', 'Flags:'];
  for (const f of FLAGS) {
    const def = f.def === '' ? '' : ` (default "${f.def}")`;
    lines.push(`  ${namesOf(f).map((n) => `--${n}`).join(', ')}${f.kind === 'bool' ? '' : ' <value>'}`);
    lines.push(`        ${f.help}${def}  [env ${envName(f.name)}]`);
  }
  lines.push(
    `  --${CONFIG_FILE} <value>`,
    "        etcd's YAML configuration file (keys are flag names); when given, the other flags and the environment are ignored.  [env ETCD_CONFIG_FILE]",
    '  --help      Show this help.',
    '  --version   Print the version.',
  );
  return lines.join('\n');
}
