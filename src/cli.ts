// bin/etcd-adapter: parse flags, start the server, stop cleanly on SIGTERM/SIGINT.
import { ConfigError, parseArgs, usage } from './config';
import { SERVER_VERSION } from './api/identity';
import { EtcdAdapterServer, log } from './server/server';
import { BackendError, defaultBackend, redact } from '../drivers/registry';

export async function main(argv: string[]): Promise<void> {
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
  for (const w of parsed.warnings) process.stderr.write(`etcd-adapter: warning: ${w}\n`);
  const { config } = parsed;

  let server: EtcdAdapterServer;
  try {
    server = await EtcdAdapterServer.start(config);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const known = err instanceof BackendError || err instanceof ConfigError || (err as NodeJS.ErrnoException).code !== undefined;
    process.stderr.write(`etcd-adapter: cannot start: ${message}\n`);
    if (!known && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
    process.exit(1);
  }
  const backend = config.backend || defaultBackend(config.dataDir);
  log(`serving etcd API ${SERVER_VERSION} on ${server.urls.join(', ')} (backend ${redact(backend)}, cluster ${server.identity.clusterId}, member ${server.identity.memberId})`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`received ${signal}, shutting down`);
    server.close().then(
      () => process.exit(0),
      (err) => {
        process.stderr.write(`etcd-adapter: error during shutdown: ${err}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
