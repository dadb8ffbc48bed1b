/**
 * Fires when nothing arrived for `timeoutMs`: the gateway writes a `: keep-alive` comment after
 * each `server.heartbeat_s` of silence (15 s by default, named in each stream's
 * `X-Heartbeat-Interval`), so three intervals without a byte mean the connection is dead even
 * if TCP has not noticed (a sleeping laptop, a proxy that dropped the flow).
 */

/** The watchdog for a gateway that writes a heartbeat every `heartbeatS` seconds of silence. */
export function watchdogFor(heartbeatS: number): number {
  return Math.max(5_000, Math.round(3 * heartbeatS * 1000));
}

/** `X-Heartbeat-Interval` (seconds), or null when absent or not a positive number. */
export function heartbeatOf(headers: Headers): number | null {
  const raw = headers.get("X-Heartbeat-Interval");
  if (raw === null || !/^\d+(\.\d+)?$/.test(raw.trim())) return null;
  const seconds = Number(raw);
  return seconds > 0 ? seconds : null;
}

export class Watchdog {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private last = 0;
  private stopped = false;

  constructor(
    private timeoutMs: number,
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

  /** Wait `ms` of silence from now on (the gateway named its heartbeat). */
  setTimeoutMs(ms: number): void {
    this.timeoutMs = ms;
    if (this.stopped) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.check();
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
