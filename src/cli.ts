// bin/etcd-adapter: parse flags, start the server, stop cleanly on SIGTERM/SIGINT.
import { ConfigError, parseArgs, usage } from './config';
import { SERVER_VERSION } from './api/identity';
import { EtcdAdapterServer } from './server/server';
import { createLogger } from './logger';
import { BackendError, BackendUrlError, defaultBackend, redact } from '../drivers/registry';
import { migrateCommand, snapshotCommand } from './snapshot/cli';
import { SnapshotError } from './snapshot/bbolt-reader';

export async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'snapshot') {
    process.exitCode = await snapshotCommand(argv.slice(1), (s) => process.stdout.write(s), (s) => process.stderr.write(s));
    return;
  }
  if (argv[0] === 'migrate') {
    const stop = new Promise<void>((resolve) => ['SIGINT', 'SIGTERM'].forEach((s) => process.once(s, () => resolve())));
    process.exitCode = await migrateCommand(argv.slice(1), (s) => process.stdout.write(s), (s) => process.stderr.write(s), stop);
    process.exit();
  }
  let parsed;
  try {
    parsed = parseArgs(argv, process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`etcd-adapter: ${err.message}\nRun "etcd-adapter --help" for the flags.\n`);
      process.exit(2);
    }
    throw err;
  }
  if (parsed.help) {
    process.stdout.write(usage() + '\n');
    return;
  }
  if (parsed.version) {
    process.stdout.write(`etcd-adapter ${require('../../package.json').version} (etcd API ${SERVER_VERSION})\n`);
    return;
  }
  const { config } = parsed;
  let logger;
  try {
    logger = createLogger({ level: config.logLevel, format: config.logFormat, outputs: config.logOutputs });
  } catch (err) {
    process.stderr.write(`etcd-adapter: cannot write logs to ${config.logOutputs.join(', ')}: ${(err as Error).message}\n`);
    process.exit(2);
  }
  for (const w of parsed.warnings) logger.warn(w);

  let server: EtcdAdapterServer;
  try {
    server = await EtcdAdapterServer.start(config, logger);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const known = err instanceof BackendError || err instanceof ConfigError || err instanceof SnapshotError || (err as NodeJS.ErrnoException).code !== undefined;
    logger.error(`cannot start: ${message}`);
    process.stderr.write(`etcd-adapter: cannot start: ${message}\n`);
    if (!known && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
    // a bad --backend value is a bad flag value: 2, as for any other flag
    process.exit(err instanceof BackendUrlError ? 2 : 1);
  }
  const backend = config.backend || defaultBackend(config.dataDir);
  logger.info('serving the etcd API', {
    version: SERVER_VERSION,
    'client-urls': server.urls,
    'metrics-urls': server.metricsUrls,
    backend: redact(backend),
    'cluster-id': server.identity.clusterId,
    'member-id': server.identity.memberId,
    name: server.identity.name,
  });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('received a signal: shutting down', { signal });
    server.close().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (err) => {
        logger.error('error during shutdown', { error: String(err) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
