import type { Http1Response } from '../common/http1/response.js';

/**
 * The SSE events of one streamed answer, held until the engine's run of due steps ends and then
 * sent in one socket write (flushStreams). Events of one run used to leave together anyway (the
 * response corks the socket until the next tick), but as one write and one buffer each; for the
 * fast profile, whose whole answer comes out of one run, that was most of the mock's CPU per
 * stream. With timed steps a run is one step: a write per step, each event still its own
 * `data: ...\n\n`.
 */
export class SseStream {
  /** Events queued so far, sent or not. */
  events = 0;
  private pending = '';

  constructor(
    private readonly res: Http1Response,
    /** Streams with events waiting for the end of the run. */
    private readonly outbox: SseStream[],
  ) {}

  /** Queues one event (a complete `data: ...\n\n`). */
  push(event: string): void {
    if (this.pending.length === 0) this.outbox.push(this);
    this.pending += event;
    this.events++;
  }

  /** Sends what is queued. */
  flush(): void {
    if (this.pending.length === 0) return;
    const text = this.pending;
    this.pending = '';
    this.res.write(text);
  }

  /** Sends what is queued and `last`, and ends the response, in one write. */
  end(last: string): void {
    const text = this.pending + last;
    this.pending = '';
    this.res.end(text);
  }
}

/** Sends every stream's queued events and empties the outbox. */
export function flushStreams(outbox: SseStream[]): void {
  for (let i = 0; i < outbox.length; i++) outbox[i]!.flush();
  outbox.length = 0;
}
