/**
 * A gateway in a fetch function: resumable streams with an event log, connections that drop,
 * hang or fail on cue, and a record of every request. Enough to drive api/chat.ts.
 */
import type { ChatChunk } from "../src/api/types";

export interface Plan {
  /** Events to send on this connection before `then` (default: all). */
  deliver?: number;
  /** After them: end with [DONE] ("done"), end the body early ("close"), fail ("error"), go silent ("hang"). */
  then?: "done" | "close" | "error" | "hang";
  /** Answer with this HTTP error instead. */
  status?: number;
  /** Throw a network error instead of answering. */
  network?: boolean;
  /** Replay this many events before the requested position too (a sloppy server). */
  overlap?: number;
  /** Send `: keep-alive` before the events. */
  heartbeat?: boolean;
  headers?: Record<string, string>;
}

export interface Recorded {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: unknown;
}

export function chunk(content: string, extra: Partial<ChatChunk["choices"][0]["delta"]> = {}): ChatChunk {
  return {
    id: "chatcmpl-x",
    object: "chat.completion.chunk",
    created: 1,
    model: "m",
    choices: [{ index: 0, delta: { content, ...extra }, finish_reason: null }],
  };
}

export class FakeGateway {
  readonly requests: Recorded[] = [];
  /** The stream's events: SSE `data` payloads (JSON text or "[DONE]"), or `status:` JSON. */
  readonly log: string[] = [];
  plans: Plan[] = [];
  streamId = "chatcmpl-abc";
  completion: unknown = null;
  private readonly enc = new TextEncoder();

  constructor(tokens: string[] = []) {
    for (const t of tokens) this.log.push(JSON.stringify(chunk(t)));
    this.log.push("[DONE]");
  }

  get connections(): Recorded[] {
    return this.requests.filter((r) => !r.url.endsWith("/cancel") && r.url.includes("/v1/"));
  }

  private wire(seq: number): string {
    const data = this.log[seq - 1]!;
    if (data.startsWith("status:")) return `id: ${seq}\nevent: status\ndata: ${data.slice(7)}\n\n`;
    return `id: ${seq}\ndata: ${data}\n\n`;
  }

  fetch = async (url: string, init: RequestInit = {}): Promise<Response> => {
    const headers = Object.fromEntries(Object.entries((init.headers as Record<string, string>) ?? {}));
    const body = typeof init.body === "string" ? (JSON.parse(init.body) as unknown) : null;
    this.requests.push({ url, method: init.method ?? "GET", headers, body });
    if (url.endsWith("/cancel")) {
      return new Response(JSON.stringify({ status: "cancelled" }), { headers: { "Content-Type": "application/json" } });
    }
    const plan = this.plans.shift() ?? {};
    if (plan.network) throw new TypeError("Failed to fetch");
    if (plan.status) {
      return new Response(
        JSON.stringify({ error: { message: `error ${plan.status}`, type: "x", param: null, code: `code_${plan.status}` } }),
        { status: plan.status, headers: { "Content-Type": "application/json", ...plan.headers } },
      );
    }
    if ((body as { stream?: boolean } | null)?.stream === false) {
      return new Response(JSON.stringify(this.completion), {
        headers: { "Content-Type": "application/json", "X-Provider": "fake", ...plan.headers },
      });
    }
    const after = url.includes("/v1/streams/") ? Number(headers["Last-Event-ID"] ?? "0") : 0;
    const from = Math.max(0, after - (plan.overlap ?? 0));
    const deliver = plan.deliver ?? this.log.length - from;
    const then = plan.then ?? "done";
    const seqs: number[] = [];
    for (let seq = from + 1; seq <= Math.min(this.log.length, from + deliver); seq++) seqs.push(seq);
    const parts = seqs.map((seq) => this.wire(seq));
    if (plan.heartbeat) parts.unshift(": keep-alive\n\n");
    const signal = init.signal;
    const enc = this.enc;
    let next = 0;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        signal?.addEventListener("abort", () => {
          try {
            controller.error(signal.reason);
          } catch {
            // already closed
          }
        });
      },
      pull(controller) {
        if (next < parts.length) {
          controller.enqueue(enc.encode(parts[next++]!));
          return;
        }
        if (then === "close" || then === "done") controller.close();
        else if (then === "error") controller.error(new TypeError("network error"));
        else return new Promise<void>(() => undefined); // "hang": nothing more, ever
      },
    });
    return new Response(stream, {
      headers: { "Content-Type": "text/event-stream", "X-Stream-Id": this.streamId, "X-Provider": "fake", ...plan.headers },
    });
  };
}

/** navigator.onLine for tests. */
export class FakeNetwork {
  online_ = true;
  private waiters: (() => void)[] = [];
  private offline: (() => void)[] = [];

  online = (): boolean => this.online_;

  waitOnline = (signal: AbortSignal): Promise<void> =>
    new Promise((resolve, reject) => {
      if (this.online_) return resolve();
      this.waiters.push(resolve);
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    });

  onOffline = (callback: () => void): (() => void) => {
    this.offline.push(callback);
    return () => {
      this.offline = this.offline.filter((c) => c !== callback);
    };
  };

  goOffline(): void {
    this.online_ = false;
    for (const c of [...this.offline]) c();
  }

  goOnline(): void {
    this.online_ = true;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
