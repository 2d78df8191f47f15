// Tracing per module, off unless ETCD_ADAPTER_TRACE names the module
// (comma-separated, or "all"): ETCD_ADAPTER_TRACE=watch,batch.
const enabled = new Set((process.env.ETCD_ADAPTER_TRACE ?? '').split(',').map((s) => s.trim()).filter(Boolean));

export function tracer(module: string): ((msg: string) => void) | null {
  if (!enabled.has(module) && !enabled.has('all')) return null;
  return (msg) => process.stderr.write(`${new Date().toISOString()} trace ${module}: ${msg}\n`);
}
