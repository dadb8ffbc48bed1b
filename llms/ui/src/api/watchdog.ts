/**
 * Fires when nothing arrived for `timeoutMs`: the gateway writes a `: keep-alive` comment every
 * 15 s of silence, so 45 s without a byte means the connection is dead even if TCP has not
 * noticed (a sleeping laptop, a proxy that dropped the flow).
 */
export class Watchdog {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private last = 0;
  private stopped = false;

  constructor(
    private readonly timeoutMs: number,
    private readonly onTimeout: () => void,
    private readonly now: () => number = () => Date.now(),
  ) {
    this.last = this.now();
    this.arm(timeoutMs);
  }

  /** Something arrived. Cheap: the timer is re-armed only when it fires early. */
  kick(): void {
    this.last = this.now();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => this.check(), ms);
  }

  private check(): void {
    this.timer = null;
    if (this.stopped) return;
    const idle = this.now() - this.last;
    if (idle >= this.timeoutMs) {
      this.stopped = true;
      this.onTimeout();
    } else {
      this.arm(this.timeoutMs - idle);
    }
  }
}
