/** Load generation: wrk when installed, else a small keep-alive generator in Node. */
import { execFile, execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'undici';
import { percentile, type RunResult } from './report.js';

export interface LoadSpec {
  url: string;
  body: string;
  connections: number;
  durationS: number;
  /** For https:// URLs: the CA to trust (wrk does not verify certificates). */
  ca?: string;
}

export function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Parses "1.23ms", "456.00us", "1.2s" into milliseconds. */
export function parseDuration(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

/** Reads wrk's --latency output. */
export function parseWrk(out: string): RunResult {
  const num = (re: RegExp) => {
    const m = re.exec(out);
    return m ? Number(m[1]) : 0;
  };
  const lat = (p: string) => {
    const m = new RegExp(`^\\s*${p}%\\s+(\\S+)`, 'm').exec(out);
    return m ? parseDuration(m[1]!) : NaN;
  };
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = sock ? sock.slice(1).reduce((n, x) => n + Number(x), 0) : 0;
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    p50Ms: lat('50'),
    p99Ms: lat('99'),
    errors: num(/Non-2xx or 3xx responses:\s+(\d+)/) + socketErrors,
    requests: num(/(\d+) requests in/),
  };
}

export function runWrk(spec: LoadSpec, scriptDir: string): Promise<RunResult> {
  const script = join(scriptDir, 'post.lua');
  writeFileSync(script, `wrk.method = "POST"\nwrk.body = ${JSON.stringify(spec.body)}\nwrk.headers["Content-Type"] = "application/json"\n`);
  const args = ['-t1', `-c${spec.connections}`, `-d${spec.durationS}s`, '--latency', '-s', script, spec.url];
  return new Promise((resolve, reject) => {
    execFile('wrk', args, { timeout: (spec.durationS + 30) * 1000 }, (err, stdout) => {
      if (err) reject(err);
      else resolve(parseWrk(stdout));
    });
  });
}

/** Fallback generator: `connections` keep-alive clients, each sending requests back to back. */
export async function runNode(spec: LoadSpec): Promise<RunResult> {
  const url = new URL(spec.url);
  const latencies: number[] = [];
  let errors = 0;
  const deadline = performance.now() + spec.durationS * 1000;
  const started = performance.now();
  const clients = Array.from({ length: spec.connections }, () => new Client(url.origin, { pipelining: 1, ...(spec.ca ? { connect: { ca: spec.ca } } : {}) }));
  await Promise.all(
    clients.map(async (client) => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        try {
          const res = await client.request({ path: url.pathname, method: 'POST', body: spec.body, headers: { 'content-type': 'application/json' } });
          await res.body.dump({ limit: Infinity });
          if (res.statusCode >= 400) errors++;
          latencies.push(performance.now() - t0);
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  await Promise.all(clients.map((c) => c.close()));
  latencies.sort((a, b) => a - b);
  return { rps: latencies.length / elapsed, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), errors, requests: latencies.length };
}
