/**
 * What the babysitters say about the router's backends (state, restarts, engine pid) for the
 * dashboard: gathered by a timer, never on a request's path, and only while someone looks (a
 * dashboard poll within IDLE_MS). Rounds never overlap; each babysitter gets `timeoutMs`, and
 * at most `concurrency` are asked at once, so 10,000 of them cost a bounded, steady trickle.
 */
import { getJson } from '../common/get-json.js';
import { babysitterRecords, fetchSitters, uniqueTargets, type SitterTarget, type SitterView } from '../babysitter/cluster-view.js';

export interface ClusterView {
  /** When the round that produced this view began (ms). */
  fetchedAt: number;
  /** Whether the registry answered its listing; null without a registry. */
  registryUp: boolean | null;
  sitters: Map<string, SitterView>;
}

export interface ClusterWatchOptions {
  refreshMs: number;
  /** Stop refreshing when nobody asked for this long. */
  idleMs: number;
  timeoutMs: number;
  concurrency: number;
}

export const CLUSTER_WATCH_DEFAULTS: ClusterWatchOptions = { refreshMs: 2000, idleMs: 60_000, timeoutMs: 1500, concurrency: 16 };

export class ClusterWatch {
  private view: ClusterView | undefined;
  private lastAsked = 0;
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly registryUrl: string | null,
    /** The babysitters the router knows of through its backends' records. */
    private readonly known: () => SitterTarget[],
    private readonly opts: ClusterWatchOptions = CLUSTER_WATCH_DEFAULTS,
  ) {}

  /** Someone looks: keep the view fresh for the next IDLE_MS (a first round starts at once). */
  touch(now = Date.now()): void {
    this.lastAsked = now;
    if (this.timer === undefined && this.round === undefined && !this.stopped) this.refresh();
  }

  /** The latest view; before the first round ends, waits for it up to `waitMs`. */
  async current(waitMs = 0): Promise<ClusterView | undefined> {
    if (this.view === undefined && this.round !== undefined && waitMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.round, new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
      clearTimeout(timer);
    }
    return this.view;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private refresh(): void {
    this.timer = undefined;
    this.round = this.gather()
      .then((view) => {
        this.view = view;
      })
      .catch(() => undefined)
      .finally(() => {
        this.round = undefined;
        if (this.stopped || Date.now() - this.lastAsked > this.opts.idleMs) return;
        this.timer = setTimeout(() => this.refresh(), this.opts.refreshMs);
        this.timer.unref();
      });
  }

  private async gather(): Promise<ClusterView> {
    const fetchedAt = Date.now();
    let registryUp: boolean | null = null;
    let registered: SitterTarget[] = [];
    if (this.registryUrl !== null) {
      const listing = await getJson(`${this.registryUrl}/services`, this.opts.timeoutMs);
      registryUp = listing?.status === 200;
      if (registryUp) registered = babysitterRecords(listing!.body);
    }
    const views = await fetchSitters(uniqueTargets(registered, this.known()), this.opts);
    return { fetchedAt, registryUp, sitters: new Map(views.map((v) => [v.name, v])) };
  }
}
