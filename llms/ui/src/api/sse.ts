/**
 * Server-sent events, decoded by the WHATWG rules (protocol.md §2): the same bytes the gateway's
 * own framing.py decodes, read here from a fetch() body instead of EventSource (which cannot POST
 * nor send headers).
 *
 * `SSEDecoder` is incremental: bytes in any fragmentation (1 byte at a time, a CR at the end of
 * one read and its LF at the start of the next, a UTF-8 sequence split across reads) give the
 * same events. `readSSE` turns a ReadableStream into an async iterator of events.
 */

export interface SSEEvent {
  /** `event:` field, or "message". */
  type: string;
  data: string;
  /** The source's last event ID string when the event was dispatched (it persists). */
  lastEventId: string;
}

const LF = 10;
const CR = 13;

export class SSEDecoder {
  /** Reconnection time from the last valid `retry:` field, in ms. */
  retry: number | null = null;
  /** The source's last event ID string (set at each dispatch, kept until changed). */
  lastEventId = "";

  // fatal: false turns invalid bytes into U+FFFD; ignoreBOM: false strips one leading BOM.
  private readonly text = new TextDecoder("utf-8");
  private line = ""; // the unfinished line
  private afterCR = false; // the previous piece ended with CR: a leading LF completes it
  private data = "";
  private eventType = "";
  private idBuffer = "";
  private inEvent = false;

  /** True while part of an event (or of a line) has arrived but not its end. */
  get pending(): boolean {
    return this.line !== "" || this.inEvent;
  }

  feed(bytes: Uint8Array): SSEEvent[] {
    const events: SSEEvent[] = [];
    this.feedText(this.text.decode(bytes, { stream: true }), events);
    return events;
  }

  /** End of stream: a partially received event is discarded (§2.3). */
  flush(): SSEEvent[] {
    const events: SSEEvent[] = [];
    this.feedText(this.text.decode(), events);
    return events;
  }

  private feedText(text: string, events: SSEEvent[]): void {
    const length = text.length;
    if (length === 0) return;
    let start = 0;
    if (this.afterCR) {
      this.afterCR = false;
      if (text.charCodeAt(0) === LF) start = 1;
    }
    for (let i = start; i < length; i++) {
      const c = text.charCodeAt(i);
      if (c !== LF && c !== CR) continue;
      const line = this.line === "" ? text.slice(start, i) : this.line + text.slice(start, i);
      this.line = "";
      this.interpret(line, events);
      if (c === CR) {
        if (i + 1 < length) {
          if (text.charCodeAt(i + 1) === LF) i++;
        } else {
          this.afterCR = true;
        }
      }
      start = i + 1;
    }
    if (start < length) this.line += text.slice(start);
  }

  private interpret(line: string, events: SSEEvent[]): void {
    if (line === "") {
      this.dispatch(events);
      return;
    }
    if (line.charCodeAt(0) === 58 /* : */) return; // a comment (keep-alive)
    const colon = line.indexOf(":");
    let field: string;
    let value: string;
    if (colon === -1) {
      field = line;
      value = "";
    } else {
      field = line.slice(0, colon);
      value = line.slice(line.charCodeAt(colon + 1) === 32 ? colon + 2 : colon + 1);
    }
    this.inEvent = true;
    switch (field) {
      case "data":
        this.data += value + "\n";
        break;
      case "event":
        this.eventType = value;
        break;
      case "id":
        if (!value.includes("\u0000")) this.idBuffer = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) this.retry = Number.parseInt(value, 10);
        break;
      default:
        break; // unknown fields (`Data`, `data `…) are ignored
    }
  }

  private dispatch(events: SSEEvent[]): void {
    this.inEvent = false;
    this.lastEventId = this.idBuffer;
    if (this.data === "") {
      this.eventType = "";
      return;
    }
    const data = this.data.endsWith("\n") ? this.data.slice(0, -1) : this.data;
    events.push({ type: this.eventType || "message", data, lastEventId: this.lastEventId });
    this.data = "";
    this.eventType = "";
  }
}

export interface ReadOptions {
  /** Called for every network read, with its size: any byte (a heartbeat too) is a sign of life. */
  onBytes?: (size: number) => void;
  /** The decoder to use (to read its `lastEventId` / `retry` afterwards). */
  decoder?: SSEDecoder;
  /** Give the event loop a turn when one burst of reads has taken this long (ms). */
  sliceMs?: number;
}

/**
 * Let the browser paint and handle input between long bursts of already-buffered reads. A
 * MessageChannel task, not setTimeout: timers are clamped, and throttled in hidden tabs.
 */
export function yieldToEventLoop(): Promise<void> {
  if (typeof MessageChannel === "undefined") {
    return new Promise((resolve) => setTimeout(resolve, 0));
  }
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

/**
 * The events of an SSE body, as they arrive. Ends at end of stream (an unfinished event is
 * dropped); a network error is thrown. Breaking out of the loop cancels the body.
 */
export async function* readSSE(
  body: ReadableStream<Uint8Array>,
  options: ReadOptions = {},
): AsyncGenerator<SSEEvent, void, undefined> {
  const decoder = options.decoder ?? new SSEDecoder();
  const sliceMs = options.sliceMs ?? 12;
  const reader = body.getReader();
  let finished = false;
  let sliceStart = performance.now();
  try {
    for (;;) {
      const asked = performance.now();
      const { done, value } = await reader.read();
      const now = performance.now();
      // A read that had to wait came back in a task of its own: the browser had its turn.
      if (now - asked > 2) sliceStart = now;
      if (done) {
        finished = true;
        yield* decoder.flush();
        return;
      }
      options.onBytes?.(value.byteLength);
      const events = decoder.feed(value);
      for (const event of events) yield event;
      // Reads that are already queued resolve as microtasks: a fast burst (a long answer
      // replayed at once) would otherwise hold the main thread for its whole length.
      if (performance.now() - sliceStart > sliceMs) {
        await yieldToEventLoop();
        sliceStart = performance.now();
      }
    }
  } finally {
    if (!finished) {
      reader.cancel().catch(() => undefined);
    }
    reader.releaseLock();
  }
}
