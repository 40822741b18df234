/**
 * Starts this project's services for real (compiled CLI, own process group, ephemeral ports) and
 * talks to them over HTTP. Every test uses these helpers; every process started here is stopped by
 * its process group when the test file ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { after } from 'node:test';
import { alive, freePortPair } from '../../bench/processes.js';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(ROOT, 'dist', 'src', 'cli.js');

/**
 * Tests run the compiled services: a test file started on its own after a source change would
 * test yesterday's code and pass or fail for the wrong reason. Every source file's build must be
 * at least as new as the source (npm test builds first; `npm run build` does it by hand), and so
 * must the copies of the dashboard's static files.
 */
const ASSET = /^src\/router\/dashboard\/[^/]+\.(html|js|css)$/;

function assertBuildFresh(): void {
  const stale: string[] = [];
  const walk = (dir: string): void => {
    let entries;
    try {
      entries = readdirSync(join(ROOT, dir), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const rel = join(dir, e.name);
      if (e.isDirectory()) walk(rel);
      else if ((e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) || ASSET.test(rel)) {
        // the dashboard's files are copied as they are
        const built = join(ROOT, 'dist', ASSET.test(rel) ? rel : rel.replace(/\.ts$/, '.js'));
        let builtMs = 0;
        try {
          builtMs = statSync(built).mtimeMs;
        } catch {
          // never built
        }
        if (builtMs < statSync(join(ROOT, rel)).mtimeMs) stale.push(rel);
      }
    }
  };
  for (const dir of ['src', 'bin', 'bench']) walk(dir);
  if (stale.length > 0) throw new Error(`dist/ is older than ${stale.slice(0, 3).join(', ')}${stale.length > 3 ? ` and ${stale.length - 3} more` : ''}: run \`npm run build\` first (npm test does)`);
}
assertBuildFresh();
/** A compatibility binary (`infini-router`, ...) as installed by npm, for tests of drop-in behaviour. */
export const compatBinary = (name: 'infini-registry' | 'infini-router' | 'infini-babysitter'): string => join(ROOT, 'dist', 'bin', `${name}.js`);

/** How to start a service: `entry` is the script to run (default: the `infini-svc` CLI). */
export interface SpawnOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  entry?: string;
}

export interface LogLine {
  level?: string;
  msg?: string;
  port?: number;
  [key: string]: unknown;
}

export class RunningService {
  readonly logs: LogLine[] = [];
  stdout = '';
  stderrText = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  port = 0;
  private waiters: Array<() => void> = [];

  constructor(readonly proc: ChildProcess) {
    let partial = '';
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (chunk: string) => {
      this.stderrText += chunk;
      partial += chunk;
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.logs.push({ msg: line, raw: true });
        }
      }
      this.notify();
    });
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (chunk: string) => {
      this.stdout += chunk;
      this.notify();
    });
    this.exited = new Promise((resolve) => proc.on('exit', (code, signal) => {
      this.notify();
      resolve({ code, signal });
    }));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  private notify(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves when a log line matches, rejects on timeout or exit. */
  waitForLog(match: (l: LogLine) => boolean, timeoutMs = 15_000): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for log line; stderr:\n${this.stderrText.slice(-2000)}`)), timeoutMs);
      const check = () => {
        const found = this.logs.find(match);
        if (found) {
          clearTimeout(timer);
          resolve(found);
        } else if (!this.alive) {
          clearTimeout(timer);
          reject(new Error(`process exited (${this.proc.exitCode ?? this.proc.signalCode}) before the log line; stderr:\n${this.stderrText.slice(-2000)}`));
        } else {
          this.waiters.push(check);
        }
      };
      check();
    });
  }

  /** Sends a signal to the whole process group. */
  signal(sig: NodeJS.Signals = 'SIGTERM'): void {
    if (!this.alive || this.proc.pid === undefined) return;
    try {
      process.kill(-this.proc.pid, sig);
    } catch {
      // group already gone
    }
  }

  async stop(sig: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.signal(sig);
    const timer = setTimeout(() => this.signal('SIGKILL'), timeoutMs);
    const result = await this.exited;
    clearTimeout(timer);
    return result;
  }
}

const started = new Set<RunningService>();
after(async () => {
  await Promise.all([...started].map((s) => s.stop('SIGKILL')));
});

/**
 * Spawns `node dist/src/cli.js <args>` (or `opts.entry`) in its own process group, with the
 * parent-death pipe `up` uses (INFINI_PARENT_FD): a test process killed by its timeout takes
 * every service it started with it instead of leaving them running.
 */
export function spawnCli(args: string[], opts: SpawnOptions = {}): RunningService {
  const proc = spawn(process.execPath, [opts.entry ?? CLI, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, LOG_LEVEL: 'info', INFINI_PARENT_FD: '3', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    detached: true,
  });
  (proc.stdio[3] as import('node:net').Socket | null)?.unref();
  const svc = new RunningService(proc);
  started.add(svc);
  void svc.exited.then(() => started.delete(svc));
  return svc;
}

/** Spawns a service with `--port 0`-style args and waits for its "listening" line to learn the port. */
export async function startService(args: string[], opts: SpawnOptions = {}): Promise<RunningService> {
  const svc = spawnCli(args, opts);
  const line = await svc.waitForLog((l) => typeof l.msg === 'string' && l.msg.includes('listening') && typeof l.port === 'number');
  svc.port = line.port!;
  return svc;
}

/** A memory-only registry on 127.0.0.1 and an ephemeral port, with extra flags. */
export function startRegistry(extra: string[] = [], opts: SpawnOptions = {}): Promise<RunningService> {
  return startService(['registry', '--port', '0', '--host', '127.0.0.1', '--no-persist', ...extra], opts);
}

/** Polls `check` until it returns a truthy value; no fixed sleeps in tests. */
export async function waitFor<T>(check: () => Promise<T> | T, what: string, timeoutMs = 10_000, everyMs = 25): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface HttpResult<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

/** Small JSON-over-HTTP client for tests. `body` may be a string (sent verbatim) or a value (JSON). */
export async function http<T = any>(
  method: string,
  url: string,
  opts: { body?: unknown; headers?: Record<string, string> } = {},
): Promise<HttpResult<T>> {
  const init: RequestInit = { method, headers: { ...opts.headers } };
  if (opts.body !== undefined) {
    init.body = typeof opts.body === 'string' || opts.body instanceof Uint8Array ? (opts.body as string) : JSON.stringify(opts.body);
    if (typeof opts.body !== 'string' && !(opts.body instanceof Uint8Array) && !opts.headers?.['content-type']) {
      (init.headers as Record<string, string>)['content-type'] = 'application/json';
    }
  }
  const res = await fetch(url, init);
  const text = await res.text();
  let body: any = undefined;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  return { status: res.status, headers: res.headers, body, text };
}

/** Reads Server-Sent Events from a URL; `next()` waits for the next event matching a predicate. */
export class SseReader {
  private buffer = '';
  private readonly events: Array<{ id?: string; data: any }> = [];
  private waiters: Array<() => void> = [];
  private readonly controller = new AbortController();
  closed = false;

  static async open(url: string): Promise<SseReader> {
    const reader = new SseReader();
    const res = await fetch(url, { signal: reader.controller.signal, headers: { accept: 'text/event-stream' } });
    if (res.status !== 200) throw new Error(`SSE ${url}: status ${res.status}`);
    void reader.pump(res.body!);
    return reader;
  }

  private async pump(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
        this.buffer += decoder.decode(chunk, { stream: true });
        let sep: number;
        while ((sep = this.buffer.indexOf('\n\n')) !== -1) {
          const block = this.buffer.slice(0, sep);
          this.buffer = this.buffer.slice(sep + 2);
          let id: string | undefined;
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) id = line.slice(4);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (data.length) {
            const text = data.join('\n');
            let parsed: any = text;
            try {
              parsed = JSON.parse(text);
            } catch {
              // keep raw text
            }
            this.events.push({ id, data: parsed });
          }
        }
        for (const w of this.waiters.splice(0)) w();
      }
    } catch {
      // aborted or connection closed
    } finally {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    }
  }

  /** Removes and returns the first buffered or future event matching `match`. */
  next(match: (data: any) => boolean = () => true, timeoutMs = 10_000): Promise<any> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timed out waiting for an SSE event')), timeoutMs);
      const check = () => {
        const i = this.events.findIndex((e) => match(e.data));
        if (i !== -1) {
          clearTimeout(timer);
          resolve(this.events.splice(i, 1)[0]!.data);
        } else if (this.closed) {
          clearTimeout(timer);
          reject(new Error('SSE stream closed'));
        } else {
          this.waiters.push(check);
        }
      };
      check();
    });
  }

  close(): void {
    this.controller.abort();
  }
}

/** A fresh temporary directory for a test's files. */
/** Temporary directories made by this test file: removed when its process exits. */
const tempDirs: string[] = [];

export async function tempDir(prefix = 'infini-test-'): Promise<string> {
  const { mkdtemp } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(join(tmpdir(), prefix));
  if (tempDirs.push(dir) === 1) {
    const { rmSync } = await import('node:fs');
    process.on('exit', () => {
      for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
    });
  }
  return dir;
}

/** Starts `n` mock engines on ephemeral ports, named mock-a, mock-b, ... unless names are given. */
export async function startMocks(specs: Array<{ models: string; name?: string; args?: string[] }>): Promise<RunningService[]> {
  return Promise.all(
    specs.map((s, i) => startService(['mock', '--port', '0', '--models', s.models, '--name', s.name ?? `mock-${String.fromCharCode(97 + i)}`, ...(s.args ?? [])])),
  );
}

/** Writes a static services file (`{"services": [...]}`) for mocks, returning its path. */
export async function writeStaticServices(entries: Array<{ name: string; port: number; models: string[]; weight?: number; metadata?: Record<string, unknown> }>, dir?: string): Promise<string> {
  const { writeFile } = await import('node:fs/promises');
  const folder = dir ?? (await tempDir());
  const path = join(folder, `static-${Math.random().toString(36).slice(2)}.json`);
  const services = entries.map((e) => ({ name: e.name, host: '127.0.0.1', port: e.port, weight: e.weight ?? 1, metadata: { type: 'openai-api', models: e.models, ...e.metadata } }));
  await writeFile(path, JSON.stringify({ services }));
  return path;
}

/** Which mock answered a chat/completion (the mock puts its name in system_fingerprint). */
export function servedBy(body: any): string {
  return body?.system_fingerprint;
}

/** Reads a Prometheus metric (summed over label sets containing `labels`) from `<base>/metrics`. */
export async function metric(base: string, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `) || (line.startsWith(`${name}{`) && line.includes(labels))) sum += Number(line.split(' ').pop());
  }
  return sum;
}

/** POSTs a streaming request and returns the `data:` payloads with their arrival times (ms). */
export async function readSse(url: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<{ status: number; events: any[]; times: number[]; done: boolean; error?: unknown }> {
  const res = await fetch(url, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers }, signal });
  const events: any[] = [];
  const times: number[] = [];
  let done = false;
  let buffer = '';
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += Buffer.from(chunk).toString('utf8');
      let i: number;
      while ((i = buffer.indexOf('\n\n')) !== -1) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        if (!line.startsWith('data: ')) continue;
        const data = line.slice(6);
        times.push(performance.now());
        if (data === '[DONE]') done = true;
        else events.push(JSON.parse(data));
      }
    }
  } catch (error) {
    return { status: res.status, events, times, done, error };
  }
  return { status: res.status, events, times, done };
}

/** A port P such that P and P+1 are both free now (a backend and its babysitter); see bench/processes.ts. */
export { freePortPair };

export const FAKE_BACKEND = join(ROOT, 'test', 'fixtures', 'fake-backend.mjs');

/**
 * A babysitter over the fake backend that spawns a worker and ignores SIGTERM (stop grace 0.5 s),
 * once ready; `tree` holds the engine's and its worker's pids.
 */
export async function startStubbornBackend(): Promise<{ sitter: RunningService; port: number; tree: { pid: number; child: number } }> {
  const { readFile } = await import('node:fs/promises');
  const port = await freePortPair();
  const out = join(await tempDir(), 'tree.json');
  const sitter = await startService(['babysitter', '--port', String(port), '--command', `${process.execPath} ${FAKE_BACKEND}`, '--args', `--port ${port}`, '--env', `OUT_FILE=${out}`, '--env', 'SPAWN_CHILD=1', '--env', 'IGNORE_TERM=1', '--stop-grace', '0.5']);
  await waitFor(async () => (await http('GET', `${sitter.url}/info`)).body.state === 'ready', 'ready');
  return { sitter, port, tree: JSON.parse(await readFile(out, 'utf8')) };
}

/** Whether a process is running: it exists and is not a zombie waiting for init to reap it. */
export { alive as pidAlive };
