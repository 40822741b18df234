import { fetchErrorText } from '../common/client-tls.js';
import type { Logger } from '../common/log.js';
import { PeriodicTask } from '../common/periodic.js';
import type { RegistryClient } from './client.js';
import type { Registration } from './record.js';

/**
 * Keeps records registered: registers them (retrying while the registry is unreachable), heartbeats
 * every interval, re-registers any record the registry no longer knows (404, e.g. after a
 * memory-only restart) and deregisters them on stop. A record's status can change while it is
 * registered (`setStatus`): the change is sent at once as a heartbeat with that status, and
 * repeated in heartbeats until the registry has acknowledged it; re-registration uses it too.
 * Calls concerning one record go to the registry in order, so a deregistration never overtakes the
 * registration before it.
 */
export class RegistrationKeeper {
  private readonly beats: PeriodicTask;
  private records = new Map<string, Registration>();
  private pending = new Set<string>();
  /** Records whose current status the registry has not acknowledged yet. */
  private statusUnsent = new Set<string>();
  /** The tail of each record's queue of registry calls. */
  private queues = new Map<string, Promise<unknown>>();
  private stopped = false;
  /** Back-off of registration retries while the registry is unreachable, per record. */
  private retryDelay = new Map<string, number>();
  private retryTimers = new Map<string, NodeJS.Timeout>();
  /** Successful registrations (first ones and re-registrations), for metrics. */
  registrations = 0;
  /** Heartbeats and registrations the registry did not answer (or answered with an error), for metrics. */
  failures = 0;

  constructor(
    private readonly client: RegistryClient,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {
    this.beats = new PeriodicTask('registry heartbeats', () => this.beatAll(), intervalMs, log);
  }

  /** Adds or replaces a record and registers it now (failures are retried on the next beat). */
  async set(reg: Registration): Promise<boolean> {
    this.records.set(reg.name, reg);
    this.statusUnsent.delete(reg.name);
    if (!this.stopped) this.beats.start();
    return this.inOrder(reg.name, async () => {
      // registers what is current when the call's turn comes (a later status or removal wins)
      const current = this.records.get(reg.name);
      return current ? this.registerOne(current) : false;
    });
  }

  /** Changes a registered record's status and tells the registry at once (a heartbeat with it). */
  async setStatus(name: string, status: string): Promise<void> {
    const reg = this.records.get(name);
    if (!reg || reg.status === status) return;
    this.records.set(name, { ...reg, status });
    this.statusUnsent.add(name);
    // (a registration sent meanwhile may already have carried it)
    await this.inOrder(name, async () => (this.statusUnsent.has(name) ? this.beatOne(name) : undefined));
  }

  status(name: string): string | undefined {
    return this.records.get(name)?.status;
  }

  /** Drops a record and deregisters it. */
  async remove(name: string): Promise<void> {
    if (!this.records.delete(name)) return;
    this.pending.delete(name);
    this.statusUnsent.delete(name);
    this.clearRetry(name);
    await this.inOrder(name, () => this.client.deregister(name));
  }

  has(name: string): boolean {
    return this.records.has(name);
  }

  /** Stops heartbeating and deregisters every record (best effort, bounded by the client timeout). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const name of [...this.retryTimers.keys()]) this.clearRetry(name);
    await this.beats.stop();
    const names = [...this.records.keys()];
    this.records.clear();
    await Promise.all(names.map((n) => this.inOrder(n, () => this.client.deregister(n))));
  }

  /** Runs `op` after every earlier call concerning the same record has finished. */
  private inOrder<T>(name: string, op: () => Promise<T>): Promise<T> {
    const result = (this.queues.get(name) ?? Promise.resolve()).then(op);
    const tail = result.catch(() => undefined);
    this.queues.set(name, tail);
    void tail.then(() => {
      if (this.queues.get(name) === tail) this.queues.delete(name);
    });
    return result;
  }

  private async registerOne(reg: Registration): Promise<boolean> {
    try {
      await this.client.register(reg);
      this.registrations++;
      this.pending.delete(reg.name);
      if (this.records.get(reg.name)?.status === reg.status) this.statusUnsent.delete(reg.name);
      this.clearRetry(reg.name);
      this.log.info({ service: reg.name, registry: this.client.baseUrl, status: reg.status }, 'registered with registry');
      return true;
    } catch (err) {
      this.failures++;
      if (!this.pending.has(reg.name)) this.log.warn({ service: reg.name, registry: this.client.baseUrl, err: fetchErrorText(err) }, 'registration failed; will retry');
      this.pending.add(reg.name);
      this.scheduleRetry(reg.name);
      return false;
    }
  }

  /** Retries a failed registration sooner than the next heartbeat: 0.5 s doubling up to the interval. */
  private scheduleRetry(name: string): void {
    if (this.stopped || this.retryTimers.has(name)) return;
    const delay = Math.min(this.intervalMs, this.retryDelay.get(name) ?? 500);
    this.retryDelay.set(name, delay * 2);
    const t = setTimeout(() => {
      this.retryTimers.delete(name);
      void this.inOrder(name, async () => {
        const reg = this.records.get(name);
        if (reg && this.pending.has(name) && !this.stopped) await this.registerOne(reg);
      });
    }, delay);
    t.unref();
    this.retryTimers.set(name, t);
  }

  private clearRetry(name: string): void {
    clearTimeout(this.retryTimers.get(name));
    this.retryTimers.delete(name);
    this.retryDelay.delete(name);
  }

  private async beatAll(): Promise<void> {
    await Promise.all([...this.records.keys()].map((name) => this.inOrder(name, () => this.beatOne(name))));
  }

  /** One heartbeat (with the status while it is unacknowledged), or a registration if it is due. */
  private async beatOne(name: string): Promise<void> {
    const reg = this.records.get(name);
    if (!reg || this.stopped) return;
    if (this.pending.has(name)) {
      await this.registerOne(reg);
      return;
    }
    const withStatus = this.statusUnsent.has(name);
    const result = await this.client.heartbeat(name, withStatus ? reg.status : undefined);
    if (result === 'ok') {
      if (withStatus && this.records.get(name)?.status === reg.status) {
        this.statusUnsent.delete(name);
        this.log.info({ service: name, status: reg.status }, 'status sent to registry');
      }
    } else if (result === 'not-found' && this.records.has(name)) {
      this.log.info({ service: name }, 'registry forgot us; re-registering');
      await this.registerOne(this.records.get(name)!);
    } else if (result === 'error') {
      this.failures++;
      this.log.debug({ service: name }, 'heartbeat failed');
    }
  }
}
