/** Starting the benchmark's processes and reading their CPU time and memory from /proc. */
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { allProcesses, procStat } from '../src/common/proc-stat.js';

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User + system CPU seconds of a process. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Direct children of a process, with their command lines. */
export function childProcesses(pid: number): Array<{ pid: number; cmd: string }> {
  const out: Array<{ pid: number; cmd: string }> = [];
  for (const p of allProcesses() ?? []) {
    if (p.ppid !== pid) continue;
    try {
      out.push({ pid: p.pid, cmd: readFileSync(`/proc/${p.pid}/cmdline`, 'latin1').split('\0').join(' ').trim() });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The pid and its direct children (nginx master and workers). */
export function withChildren(pid: number): number[] {
  return [pid, ...childProcesses(pid).map((c) => c.pid)];
}

/** Whether a process runs: it exists and is not a zombie waiting to be reaped. */
export function alive(pid: number): boolean {
  const s = procStat(pid);
  return s !== undefined && s.state !== 'Z';
}

export function openFiles(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

/**
 * Where fixed ports (services started on a known port, a backend and its babysitter at P and P+1)
 * come from: below the kernel's ephemeral range, so that no `--port 0` service or outgoing
 * connection can take one between the check and the bind, and within that range a slice of its
 * own per process, so that two test files running at once do not pick the same ones.
 */
function fixedPortRange(): [number, number] {
  let low = 32768;
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
  } catch {
    // not Linux: the usual default
  }
  const [from, to] = low > 11_024 ? [low - 10_000, low - 2] : [1024, low - 2];
  const slices = 16;
  const width = Math.floor((to - from) / slices);
  const start = from + (process.pid % slices) * width;
  return [start, start + width];
}
const handedOut = new Set<number>();

/** A port P such that P and P+1 are both free now on every address, never handed out before here. */
export async function freePortPair(): Promise<number> {
  const free = (port: number) =>
    new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '0.0.0.0', () => s.close(() => resolve(true)));
    });
  const [low, high] = fixedPortRange();
  for (let i = 0; i < 200; i++) {
    const port = low + Math.floor(Math.random() * (high - low - 1));
    if (handedOut.has(port) || handedOut.has(port + 1) || handedOut.has(port - 1)) continue;
    if ((await free(port)) && (await free(port + 1))) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free port pair');
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function waitHttp(url: string, timeoutMs = 15_000, ca?: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  // https:// with a certificate of the run's own CA: undici's fetch with an agent trusting it
  const get = ca === undefined ? fetch : await import('undici').then(({ Agent, fetch: f }) => {
    const dispatcher = new Agent({ connect: { ca } });
    return (u: string) => f(u, { dispatcher });
  });
  for (;;) {
    try {
      const res = await get(url);
      await res.arrayBuffer();
      if (res.status < 500) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${url}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A benchmark process in its own process group, stopped by group. */
export class BenchProcess {
  readonly proc: ChildProcess;
  constructor(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
    this.proc = spawn(cmd, args, { detached: true, stdio: ['ignore', 'ignore', 'inherit'], env });
  }
  get pid(): number {
    return this.proc.pid!;
  }
  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    try {
      process.kill(-this.pid, 'SIGTERM');
    } catch {
      return;
    }
    const t = setTimeout(() => {
      try {
        process.kill(-this.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }, 5000);
    await exited;
    clearTimeout(t);
  }
}

/** nginx as a plain round-robin reverse proxy with keep-alive to the same backends, one worker. */
/**
 * nginx as a round-robin proxy to `backends` on `port`; with `tls`, also terminating TLS on
 * `tls.port` (TLS 1.2+, like the router) and proxying plain HTTP to the same backends.
 */
export function nginxConfig(dir: string, port: number, backends: number[], tls?: { port: number; cert: string; key: string }): string {
  const conf = join(dir, 'nginx.conf');
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  writeFileSync(
    conf,
    `${user}worker_processes 1;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'nginx-error.log')} warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream backends {
${backends.map((p) => `    server 127.0.0.1:${p};`).join('\n')}
    keepalive 512;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
${tls ? nginxTlsServer(tls) : ''}}
`,
  );
  return conf;
}

/** The TLS server block: keep-alive without a request cap, so handshakes stay out of the figures. */
function nginxTlsServer(tls: { port: number; cert: string; key: string }): string {
  return `  server {
    listen 127.0.0.1:${tls.port} ssl backlog=4096;
    ssl_certificate ${tls.cert};
    ssl_certificate_key ${tls.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
`;
}
