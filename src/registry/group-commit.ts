/**
 * Group commit: jobs submitted while a commit is running wait and then share the next one, so a
 * burst of N changes costs about two writes, not N, and every caller learns only after the write
 * that contains its change. The first job of an idle queue waits one `setImmediate` so that requests
 * parsed in the same event-loop turn share its write.
 */
export class GroupCommit<Job, Result> {
  private queue: Array<{ job: Job; resolve: (r: Result) => void; reject: (err: unknown) => void }> = [];
  private running: Promise<void> | undefined;
  private scheduled = false;

  /** `commit` runs one group in submission order and returns one result per job, or throws for all. */
  constructor(private readonly commit: (jobs: Job[]) => Promise<Result[]>) {}

  submit(job: Job): Promise<Result> {
    return new Promise((resolve, reject) => {
      this.queue.push({ job, resolve, reject });
      if (!this.running && !this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.next();
        });
      }
    });
  }

  /** Resolves once every job submitted so far has been committed (or failed). */
  async drain(): Promise<void> {
    while (this.running || this.scheduled || this.queue.length > 0) {
      await (this.running ?? new Promise((r) => setImmediate(r)));
    }
  }

  private next(): void {
    const group = this.queue.splice(0);
    if (group.length === 0) return;
    this.running = this.commit(group.map((g) => g.job)).then(
      (results) => group.forEach((g, i) => g.resolve(results[i] as Result)),
      (err: unknown) => group.forEach((g) => g.reject(err)),
    ).finally(() => {
      this.running = undefined;
      // Jobs that arrived during this commit form the next group at once.
      this.next();
    });
  }
}
