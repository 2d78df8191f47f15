// The paths for operators and load balancers, served on every client URL and
// on --listen-metrics-urls: /version, /health (etcd 3.4/3.5), /livez and
// /readyz (etcd 3.5.11+: named checks, `?verbose` lists them, `?exclude=name`
// skips one) and /metrics (Prometheus text).
import type express from 'express';
import { CLUSTER_VERSION, SERVER_VERSION } from '../api/identity';
import { sendJson } from './http';

/** A named check: null when it passes, else why not. */
export type Check = [name: string, run: () => Promise<string | null>];

export interface OpsDeps {
  /** Health for GET /health: null when healthy, else the reason. */
  unhealthy(): Promise<string | null>;
  /** /livez: this process serves (none of these depend on the database). */
  livez: Check[];
  /** /readyz: this instance can serve requests right now (the database answers, the log tail reads). */
  readyz: Check[];
  /** The Prometheus text; absent when metrics are off. */
  metrics?(): Promise<{ contentType: string; body: string }>;
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** Runs the checks a probe asked for; 200 with "ok" when all pass, else 503 (k8s / etcd 3.5 style). */
async function probe(name: 'livez' | 'readyz', checks: Check[], req: express.Request, res: express.Response): Promise<void> {
  const exclude = new Set(([] as unknown[]).concat(req.query.exclude ?? []).map(String));
  const verbose = req.query.verbose !== undefined;
  const lines: string[] = [];
  let failed = false;
  for (const [check, run] of checks) {
    if (exclude.has(check)) {
      lines.push(`[+]${check} excluded: ok`);
      continue;
    }
    const reason = await run().catch(message);
    if (reason) failed = true;
    lines.push(reason ? `[-]${check} failed: ${reason}` : `[+]${check} ok`);
  }
  const body = failed || verbose ? `${lines.join('\n')}\n${failed ? `${name} check failed` : 'ok'}\n` : 'ok';
  res.status(failed ? 503 : 200).type('text/plain').send(body);
}

export function opsRoutes(app: express.Express, deps: OpsDeps): void {
  app.get('/version', (_req, res) => {
    sendJson(res, 200, `{"etcdserver":"${SERVER_VERSION}","etcdcluster":"${CLUSTER_VERSION}"}`);
  });

  app.get('/health', async (_req, res) => {
    const reason = await deps.unhealthy().catch(message);
    // etcd writes it without a content type: Go's sniffing makes it text
    res
      .status(reason ? 503 : 200)
      .type('text/plain; charset=utf-8')
      .send(`{"health":"${reason ? 'false' : 'true'}","reason":${JSON.stringify(reason ?? '')}}`);
  });

  app.get('/livez', (req, res) => void probe('livez', deps.livez, req, res));
  app.get('/readyz', (req, res) => void probe('readyz', deps.readyz, req, res));

  app.get('/metrics', async (_req, res) => {
    if (!deps.metrics) {
      res.status(404).type('text/plain').send('metrics are off (--metrics off)\n');
      return;
    }
    try {
      const { contentType, body } = await deps.metrics();
      res.status(200).type(contentType).send(body);
    } catch (err) {
      res.status(500).type('text/plain').send(`${message(err)}\n`);
    }
  });
}
