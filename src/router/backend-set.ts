import { Backend, type BackendSpec, type PoolOptions } from './backend.js';

/**
 * How long a model whose last backend left still counts as existing: an engine being restarted
 * deregisters and comes back within minutes, and its clients should be told to retry (503), not
 * that the model does not exist (404).
 */
export const MODEL_MEMORY_MS = 10 * 60_000;

/** Whether a model exists here: served now, served until recently, unknown, or not known yet. */
export type ModelPresence = 'served' | 'recent' | 'unknown' | 'undetermined';

/**
 * The router's view of its backends, in a stable order (by name) so that routing never depends on
 * hash-map iteration order. Candidate lists per model are rebuilt only when membership changes.
 */
export class BackendSet {
  private readonly byName = new Map<string, Backend>();
  private ordered: Backend[] = [];
  private byModel = new Map<string, Backend[]>();
  /** Models that lost their last backend, with when (pruned after MODEL_MEMORY_MS). */
  private readonly goneModels = new Map<string, number>();
  private readonly listeners: Array<(all: Backend[]) => void> = [];
  private readonly downListeners: Array<(backend: Backend, reason: string) => void> = [];
  private readonly addedListeners: Array<(backend: Backend) => void> = [];
  /**
   * Whether membership is known: false until discovery has listed the registry once (a router
   * that never reached its registry cannot say that a model does not exist).
   */
  complete = true;

  constructor(private readonly poolOptions: PoolOptions) {}

  get all(): readonly Backend[] {
    return this.ordered;
  }

  get size(): number {
    return this.ordered.length;
  }

  get(name: string): Backend | undefined {
    return this.byName.get(name);
  }

  /** Called with the full list whenever membership or a backend's models change. */
  onChange(listener: (all: Backend[]) => void): void {
    this.listeners.push(listener);
  }

  /** Called when a backend is declared dead: removed, or its health check got no answer at all. */
  onDown(listener: (backend: Backend, reason: string) => void): void {
    this.downListeners.push(listener);
  }

  /** Called with each backend that joins (not when one already here changes). */
  onAdded(listener: (backend: Backend) => void): void {
    this.addedListeners.push(listener);
  }

  declareDown(backend: Backend, reason: string): void {
    for (const l of this.downListeners) l(backend, reason);
  }

  upsert(spec: BackendSpec): Backend {
    const existing = this.byName.get(spec.name);
    if (existing) {
      const modelsBefore = existing.models.join('\n');
      existing.apply(spec);
      if (existing.models.join('\n') !== modelsBefore) this.rebuild();
      return existing;
    }
    const backend = new Backend(spec, this.poolOptions);
    this.byName.set(spec.name, backend);
    this.rebuild();
    for (const l of this.addedListeners) l(backend);
    return backend;
  }

  remove(name: string, reason = 'removed'): Backend | undefined {
    const backend = this.byName.get(name);
    if (!backend) return undefined;
    this.byName.delete(name);
    this.rebuild();
    this.declareDown(backend, reason);
    void backend.close();
    return backend;
  }

  /** Backends that declare `model` (all backends when no model is known). Not filtered by health. */
  serving(model: string | undefined): readonly Backend[] {
    if (model === undefined) return this.ordered;
    return this.byModel.get(model) ?? [];
  }

  /** Whether `model` exists here (see ModelPresence), for choosing between 404 and 503. */
  presence(model: string, now: number): ModelPresence {
    if (this.byModel.has(model)) return 'served';
    if (!this.complete) return 'undetermined';
    const gone = this.goneModels.get(model);
    return gone !== undefined && now - gone < MODEL_MEMORY_MS ? 'recent' : 'unknown';
  }

  /** Routable candidates for a model, minus already-tried backends. */
  candidates(model: string | undefined, now: number, exclude?: ReadonlySet<Backend>): Backend[] {
    const out: Backend[] = [];
    for (const b of this.serving(model)) if (b.routable(now) && !exclude?.has(b)) out.push(b);
    return out;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.ordered.map((b) => b.close()));
  }

  private rebuild(): void {
    this.ordered = [...this.byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const byModel = new Map<string, Backend[]>();
    for (const b of this.ordered) {
      for (const m of b.modelSet) {
        let list = byModel.get(m);
        if (!list) byModel.set(m, (list = []));
        list.push(b);
      }
    }
    const now = Date.now();
    for (const m of this.byModel.keys()) if (!byModel.has(m)) this.goneModels.set(m, now);
    for (const [m, at] of this.goneModels) if (byModel.has(m) || now - at >= MODEL_MEMORY_MS) this.goneModels.delete(m);
    this.byModel = byModel;
    for (const l of this.listeners) l(this.ordered);
  }
}
