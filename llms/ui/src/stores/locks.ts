/**
 * Which tab runs an answer: the tab streaming it holds a Web Lock named after the message
 * (`navigator.locks`) until the run ends. The browser releases it when that tab closes or
 * reloads, so another tab waiting on it learns at once that nobody follows the stream any more
 * and picks it up (GET /v1/streams/{id} from the last event id seen). Without Web Locks
 * (old browsers, unit tests) an in-page registry does the same for one page.
 */

/** Give the lock back. */
export type Release = () => void;

export interface RunLocks {
  /**
   * Hold `name`; resolves with its release once held. `wait: false` resolves null at once when
   * someone else holds it. Resolves null when `signal` aborts first.
   */
  acquire(name: string, options?: { wait?: boolean; signal?: AbortSignal }): Promise<Release | null>;
}

export function lockName(messageId: string): string {
  return `llms-answer-${messageId}`;
}

interface LockManagerLike {
  request(
    name: string,
    options: { ifAvailable?: boolean; signal?: AbortSignal },
    callback: (lock: unknown) => Promise<void> | void,
  ): Promise<unknown>;
}

function webLocks(manager: LockManagerLike): RunLocks {
  return {
    acquire(name, { wait = true, signal } = {}) {
      return new Promise((resolve) => {
        const options = wait ? (signal ? { signal } : {}) : { ifAvailable: true };
        manager
          .request(name, options, (lock) => {
            if (!lock) {
              resolve(null);
              return;
            }
            // Held until the release is called (or the page goes away).
            return new Promise<void>((release) => resolve(release));
          })
          .catch(() => resolve(null)); // aborted while waiting
      });
    },
  };
}

/** Locks within one page: what a single tab needs, and what unit tests share between "tabs". */
export class MemoryLocks implements RunLocks {
  private readonly held = new Set<string>();
  private readonly queues = new Map<string, (() => void)[]>();

  acquire(name: string, { wait = true, signal }: { wait?: boolean; signal?: AbortSignal } = {}): Promise<Release | null> {
    const grant = (): Release => {
      this.held.add(name);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        this.held.delete(name);
        this.queues.get(name)?.shift()?.();
      };
    };
    if (!this.held.has(name)) return Promise.resolve(grant());
    if (!wait || signal?.aborted) return Promise.resolve(null);
    return new Promise((resolve) => {
      const queue = this.queues.get(name) ?? [];
      this.queues.set(name, queue);
      const next = (): void => {
        signal?.removeEventListener("abort", abort);
        resolve(grant());
      };
      const abort = (): void => {
        const at = queue.indexOf(next);
        if (at !== -1) queue.splice(at, 1);
        resolve(null);
      };
      queue.push(next);
      signal?.addEventListener("abort", abort, { once: true });
    });
  }

  /** As when the holder's page goes away: the lock is free, whatever its holder does. */
  drop(name: string): void {
    if (!this.held.delete(name)) return;
    this.queues.get(name)?.shift()?.();
  }

  isHeld(name: string): boolean {
    return this.held.has(name);
  }
}

export function browserLocks(): RunLocks {
  const manager = typeof navigator === "undefined" ? undefined : (navigator as { locks?: LockManagerLike }).locks;
  return manager ? webLocks(manager) : new MemoryLocks();
}
