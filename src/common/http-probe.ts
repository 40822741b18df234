/** Outcome of one GET probe: the status code, or why there was none. */
export type ProbeStatus = number | 'refused' | 'error';

/**
 * GETs a URL for its status only, bounded by `timeoutMs`; never throws. 'refused' means nothing
 * listens there (callers fall back to another address), 'error' any other failure or a timeout.
 */
export async function probeStatus(url: string, timeoutMs: number): Promise<ProbeStatus> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel().catch(() => undefined);
    return res.status;
  } catch (err) {
    return (err as { cause?: { code?: string } }).cause?.code === 'ECONNREFUSED' ? 'refused' : 'error';
  }
}

export function is2xx(status: ProbeStatus): boolean {
  return typeof status === 'number' && status >= 200 && status < 300;
}
