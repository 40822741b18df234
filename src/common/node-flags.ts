/**
 * V8 flags every service runs with (bin shims, `up`, the babysitter's mock preset, the Dockerfile;
 * test/docs.test.ts keeps them in sync).
 * - `--max-semi-space-size=8`: a smaller young generation keeps the router's RSS with 1,000
 *   concurrent streams under 150 MB (up to ~160 MB without it) at no CPU cost we could measure.
 * - `--no-allocation-site-pretenuring`: under load V8 saw the request objects of the first busy
 *   moments survive young collections and from then on allocated them straight in the old space,
 *   so every request's garbage needed full mark-compacts (GC time ~8x, router CPU per request
 *   ~20% higher; it happened in most runs, not all). Request objects die young; keep them there.
 * (`--single-threaded-gc` was tried: interleaved A/B runs showed no gain and a higher RSS.)
 */
export const NODE_FLAGS = ['--max-semi-space-size=8', '--no-allocation-site-pretenuring'];
