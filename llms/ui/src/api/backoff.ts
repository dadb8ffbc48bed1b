/** Reconnect timing: exponential backoff with jitter, and an abortable sleep. */

export interface BackoffPolicy {
  /** The first delay, ms (then ×factor each try). */
  baseMs: number;
  factor: number;
  /** ±this fraction of each delay, drawn at random, so many clients do not retry in step. */
  jitter: number;
  /** Tries before giving up. */
  tries: number;
}

export const RECONNECT: BackoffPolicy = { baseMs: 1000, factor: 2, jitter: 0.25, tries: 3 };

/** The delay before try `attempt` (0-based): about 1 s, 2 s, 4 s with the default policy. */
export function backoffDelay(
  attempt: number,
  policy: BackoffPolicy = RECONNECT,
  random: () => number = Math.random,
): number {
  const nominal = policy.baseMs * policy.factor ** attempt;
  const spread = 1 - policy.jitter + 2 * policy.jitter * random();
  return Math.round(nominal * spread);
}

/** The bounds `backoffDelay` stays within for `attempt`. */
export function backoffBounds(attempt: number, policy: BackoffPolicy = RECONNECT): [number, number] {
  const nominal = policy.baseMs * policy.factor ** attempt;
  return [Math.round(nominal * (1 - policy.jitter)), Math.round(nominal * (1 + policy.jitter))];
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason ?? new DOMException("Aborted", "AbortError"));
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason ?? new DOMException("Aborted", "AbortError"));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
