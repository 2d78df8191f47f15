// Runs Debian's etcdctl (v3 API) and parses `-w json` output.
import { spawn } from 'node:child_process';

export interface CtlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function etcdctl(endpoint: string, args: string[], stdin?: string, env: NodeJS.ProcessEnv = {}): Promise<CtlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('etcdctl', ['--endpoints', endpoint, '--dial-timeout', '5s', '--command-timeout', '10s', ...args], {
      env: { ...process.env, ETCDCTL_API: '3', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    // etcdctl may exit before reading its input (most commands never do): that EPIPE is not an error here
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin ?? '');
  });
}

/** Parses etcdctl's JSON, keeping integers beyond 2^53 exact (as strings). */
export function parseJsonBig(text: string): any {
  return JSON.parse(text.replace(/([:[,]\s*)(-?\d{16,})(?=\s*[,\]}])/g, '$1"$2"'));
}

/** The last "Error: ..." line etcdctl printed, without its log noise. */
export function ctlError(r: CtlResult): string {
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('Error:'));
  return lines[lines.length - 1] ?? '';
}
