/**
 * One answer from the gateway, whatever the network does.
 *
 * Streaming always uses resumable mode (`X-Stream-Resumable: true`): every event carries
 * `id: <seq>`, so when the connection drops mid-answer the run reconnects through
 * `GET /v1/streams/{id}` with `Last-Event-ID` (backoff with jitter, 3 tries) and the answer goes
 * on where it stopped — events at or below the last seen id are skipped, so nothing is doubled.
 * A watchdog treats 45 s without a byte (heartbeats included) as a drop. A failure before the
 * stream exists falls back once to a plain non-streaming request. Stop aborts the fetch and
 * cancels the stream on the gateway, so the upstream stops generating.
 *
 * The run reports what happens through `emit` (the message store folds those events into a
 * message) and resolves with the outcome; it never throws.
 */
import { RECONNECT, backoffDelay, sleep, type BackoffPolicy } from "./backoff";
import { Gateway, networkMessage } from "./client";
import { ApiError, errorBodyOf, retryAfterOf } from "./errors";
import { readSSE } from "./sse";
import type { ChatChunk, ChatCompletion, ChatRequest, StreamStatus } from "./types";
import { Watchdog, heartbeatOf, watchdogFor } from "./watchdog";

export type RunMode = "stream" | "resume" | "complete";

export type RunEvent =
  | { type: "request"; mode: RunMode; fallback: boolean }
  | { type: "open"; streamId: string | null; provider: string | null }
  | { type: "status"; status: StreamStatus }
  | { type: "chunk"; chunk: ChatChunk; seq: number | null }
  | { type: "completion"; completion: ChatCompletion; provider: string | null }
  | { type: "reconnecting"; attempt: number; tries: number; delayMs: number; reason: string }
  | { type: "paused"; reason: "offline" }
  | { type: "resumed" };

export type RunOutcome =
  | { kind: "done" }
  | { kind: "stopped"; by: "user" | "elsewhere" }
  | { kind: "failed"; error: ApiError; interrupted: boolean };

/** Online/offline, abstracted so tests can drive it. */
export interface NetworkStatus {
  online(): boolean;
  /** Resolves once online again; rejects when `signal` aborts. */
  waitOnline(signal: AbortSignal): Promise<void>;
  /** Calls `callback` when the browser goes offline; returns the unsubscribe function. */
  onOffline(callback: () => void): () => void;
}

export const browserNetwork: NetworkStatus = {
  online: () => typeof navigator === "undefined" || navigator.onLine !== false,
  waitOnline(signal) {
    return new Promise((resolve, reject) => {
      if (browserNetwork.online()) {
        resolve();
        return;
      }
      const done = (): void => {
        window.removeEventListener("online", done);
        signal.removeEventListener("abort", aborted);
        resolve();
      };
      const aborted = (): void => {
        window.removeEventListener("online", done);
        reject(signal.reason);
      };
      window.addEventListener("online", done);
      signal.addEventListener("abort", aborted, { once: true });
    });
  },
  onOffline(callback) {
    if (typeof window === "undefined") return () => undefined;
    window.addEventListener("offline", callback);
    return () => window.removeEventListener("offline", callback);
  },
};

export interface RunOptions {
  gateway: Gateway;
  /** The request (model, messages, parameters); `stream` and `stream_options` are set here. */
  request: ChatRequest;
  /** false: one non-streaming request (the settings' "Enable streaming" off). */
  streaming: boolean;
  /** The user's Stop. */
  signal: AbortSignal;
  emit: (event: RunEvent) => void;
  /** Start by following an existing stream instead of sending the request. */
  resume?: { streamId: string; lastEventId: number };
  /** The id to give the stream (`X-Stream-Id`); default: a new random one. */
  streamId?: string;
  policy?: BackoffPolicy;
  watchdogMs?: number;
  random?: () => number;
  network?: NetworkStatus;
}

export const WATCHDOG_MS = 45_000;

/** The watchdog the gateway's last named heartbeat calls for (until one is named: 45 s). */
let learnedWatchdogMs: number | null = null;

/** The connection went away (closed early, a network error, the watchdog, offline). */
class Drop extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Drop";
  }
}

/** A streaming response being read, with what guards it. */
interface Connection {
  response: Response;
  controller: AbortController;
  watchdog: Watchdog;
  release: () => void;
}

type Consumed = RunOutcome | Drop;

export function runChat(options: RunOptions): Promise<RunOutcome> {
  return new ChatRun(options).run();
}

class ChatRun {
  private streamId: string | null = null;
  private lastSeq = 0;
  /** Reconnect tries since the last event received. */
  private failedTries = 0;
  private readonly policy: BackoffPolicy;
  private readonly network: NetworkStatus;

  constructor(private readonly options: RunOptions) {
    this.streamId = options.streamId ?? null;
    this.policy = options.policy ?? RECONNECT;
    this.network = options.network ?? browserNetwork;
  }

  private get stopped(): boolean {
    return this.options.signal.aborted;
  }

  async run(): Promise<RunOutcome> {
    try {
      if (this.stopped) return { kind: "stopped", by: "user" };
      const { resume } = this.options;
      if (resume) {
        this.streamId = resume.streamId;
        this.lastSeq = resume.lastEventId;
        let first: Connection;
        try {
          // At once: the answer may still be generating on the gateway (a reload, another tab).
          first = await this.open("resume");
        } catch (error) {
          if (this.stopped || !(error instanceof ApiError) || !error.isNetwork) throw unresumable(error);
          first = await this.reconnect(error.message);
        }
        return await this.follow(first);
      }
      await this.whenOnline();
      if (!this.options.streaming) return await this.complete(false);
      let connection: Connection;
      try {
        connection = await this.open("stream");
      } catch (error) {
        if (this.stopped || !(error instanceof ApiError) || !error.isNetwork) throw error;
        // Nothing arrived, not even headers: one plain request may still get through (a proxy
        // that mangles event streams, a flaky first connection).
        await this.whenOnline();
        return await this.complete(true);
      }
      return await this.follow(connection);
    } catch (error) {
      if (this.stopped) return { kind: "stopped", by: "user" };
      if (error instanceof ApiError) {
        return { kind: "failed", error, interrupted: error.code === "connection_lost" };
      }
      const message = error instanceof Error ? error.message : String(error);
      return { kind: "failed", error: new ApiError(message), interrupted: false };
    } finally {
      if (this.stopped && this.streamId !== null) void this.options.gateway.cancel(this.streamId);
    }
  }

  private async whenOnline(): Promise<void> {
    if (this.network.online()) return;
    this.options.emit({ type: "paused", reason: "offline" });
    await this.network.waitOnline(this.options.signal);
    this.options.emit({ type: "resumed" });
  }

  /** Read, reconnecting after each drop, until the stream ends. */
  private async follow(first: Connection): Promise<RunOutcome> {
    let connection = first;
    for (;;) {
      const result = await this.consume(connection);
      if (!(result instanceof Drop)) return result;
      if (this.streamId === null) {
        throw new ApiError(`${result.message} The gateway did not name the stream, so it cannot be resumed.`, {
          code: "connection_lost",
        });
      }
      connection = await this.reconnect(result.message);
    }
  }

  /** Resume the stream after the last event seen, with backoff; throws after the last try. */
  private async reconnect(reason: string): Promise<Connection> {
    const { tries } = this.policy;
    let why = reason;
    for (;;) {
      if (!this.network.online()) {
        await this.whenOnline();
        this.failedTries = 0; // waiting for the network is not a failed try
      }
      if (this.failedTries >= tries) {
        throw new ApiError(`The connection was lost and ${tries} attempts to resume failed: ${why}`, {
          code: "connection_lost",
        });
      }
      const delayMs = backoffDelay(this.failedTries, this.policy, this.options.random);
      this.failedTries += 1;
      this.options.emit({ type: "reconnecting", attempt: this.failedTries, tries, delayMs, reason: why });
      await sleep(delayMs, this.options.signal);
      try {
        return await this.open("resume");
      } catch (error) {
        if (this.stopped) throw error;
        if (error instanceof ApiError && !error.isNetwork) throw unresumable(error);
        why = error instanceof Error ? error.message : String(error);
      }
    }
  }

  /** Send the request (or the resume) and wait for the response headers. */
  private async open(mode: "stream" | "resume"): Promise<Connection> {
    const { gateway, signal, emit } = this.options;
    const controller = new AbortController();
    const onStop = (): void => controller.abort(signal.reason);
    if (signal.aborted) controller.abort(signal.reason);
    else signal.addEventListener("abort", onStop, { once: true });
    let watchdogMs = this.options.watchdogMs ?? learnedWatchdogMs ?? WATCHDOG_MS;
    const watchdog = new Watchdog(watchdogMs, () =>
      controller.abort(new Drop(`Nothing arrived from the gateway for ${Math.round(watchdogMs / 1000)} s.`)),
    );
    const release = (): void => {
      watchdog.stop();
      signal.removeEventListener("abort", onStop);
    };
    emit({ type: "request", mode, fallback: false });
    let response: Response;
    try {
      if (mode === "stream") {
        const body: ChatRequest = {
          ...this.options.request,
          stream: true,
          stream_options: { include_usage: true },
        };
        // Named here, so Stop can cancel the stream before its first byte (and its headers).
        this.streamId ??= newStreamId();
        response = await gateway.request("/v1/chat/completions", {
          method: "POST",
          headers: {
            "Content-Type": "application/json",
            Accept: "text/event-stream",
            "X-Stream-Resumable": "true",
            "X-Stream-Id": this.streamId,
          },
          body: JSON.stringify(body),
          signal: controller.signal,
          cache: "no-store",
        });
      } else {
        const id = this.streamId as string;
        response = await gateway.request(`/v1/streams/${encodeURIComponent(id)}`, {
          headers: { Accept: "text/event-stream", "Last-Event-ID": String(this.lastSeq) },
          signal: controller.signal,
          cache: "no-store",
        });
      }
    } catch (error) {
      release();
      if (error instanceof Drop) throw new ApiError(error.message, { status: 0, code: "timeout" });
      throw error;
    }
    const type = response.headers.get("Content-Type") ?? "";
    if (!type.includes("text/event-stream") || response.body === null) {
      release();
      controller.abort();
      throw new ApiError("The gateway answered without an event stream.", { status: response.status });
    }
    watchdog.kick();
    const heartbeat = heartbeatOf(response.headers);
    if (heartbeat !== null && this.options.watchdogMs === undefined) {
      // The gateway says how often it writes when there is nothing to say: three of those.
      learnedWatchdogMs = watchdogMs = watchdogFor(heartbeat);
      watchdog.setTimeoutMs(watchdogMs);
    }
    return { response, controller, watchdog, release };
  }

  /** Read one connection to its end: the outcome, or a Drop to reconnect after. */
  private async consume(connection: Connection): Promise<Consumed> {
    const { response, controller, watchdog, release } = connection;
    const { emit } = this.options;
    const header = response.headers.get("X-Stream-Id");
    if (header) this.streamId = header;
    emit({ type: "open", streamId: this.streamId, provider: response.headers.get("X-Provider") });
    const unsubscribe = this.network.onOffline(() => controller.abort(new Drop("The browser went offline.")));
    const body = response.body as ReadableStream<Uint8Array>;
    try {
      for await (const event of readSSE(body, { onBytes: () => watchdog.kick() })) {
        const seq = /^\d+$/.test(event.lastEventId) ? Number(event.lastEventId) : null;
        if (seq !== null) {
          if (seq <= this.lastSeq) continue; // already delivered before a reconnect
          this.lastSeq = seq;
        }
        this.failedTries = 0;
        if (event.type === "status") {
          const status = parseJSON(event.data);
          if (status !== null && typeof status === "object") emit({ type: "status", status: status as StreamStatus });
          continue;
        }
        if (event.type !== "message") continue;
        if (event.data === "[DONE]") return { kind: "done" };
        const data = parseJSON(event.data);
        const requestId = response.headers.get("X-Request-Id");
        const failure = failureOf(data, requestId);
        if (failure !== null) return { kind: "failed", error: failure, interrupted: false };
        const error = errorBodyOf(data);
        if (error !== null) {
          const code = error.code === null || error.code === undefined ? null : String(error.code);
          if (code === "cancelled") return { kind: "stopped", by: "elsewhere" };
          return {
            kind: "failed",
            error: new ApiError(error.message, { status: 200, code, type: error.type ?? null, requestId }),
            interrupted: false,
          };
        }
        if (data !== null && typeof data === "object") emit({ type: "chunk", chunk: data as ChatChunk, seq });
      }
      return new Drop("The connection closed before the answer ended.");
    } catch (error) {
      if (this.stopped) throw error;
      const reason: unknown = controller.signal.reason;
      if (controller.signal.aborted && reason instanceof Drop) return reason;
      return new Drop(networkMessage(error));
    } finally {
      unsubscribe();
      release();
    }
  }

  /** One non-streaming request: the settings' choice, or the fallback. */
  private async complete(fallback: boolean): Promise<RunOutcome> {
    const { gateway, signal, emit } = this.options;
    emit({ type: "request", mode: "complete", fallback });
    const body: ChatRequest = { ...this.options.request, stream: false };
    delete body.stream_options;
    const response = await gateway.request("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal,
      cache: "no-store",
    });
    const completion = (await response.json()) as ChatCompletion;
    emit({ type: "completion", completion, provider: response.headers.get("X-Provider") });
    return { kind: "done" };
  }
}

/**
 * A failure recorded before any output (`{"status", "headers", "body": {"error"}}`), in case the
 * gateway sends it as an event because its response had already started (a heartbeat).
 */
function failureOf(data: unknown, requestId: string | null): ApiError | null {
  if (typeof data !== "object" || data === null || !("body" in data) || !("status" in data)) return null;
  const { status, headers, body } = data as { status: unknown; headers: unknown; body: unknown };
  const error = errorBodyOf(body);
  if (error === null || typeof status !== "number") return null;
  const retry = new Headers();
  if (typeof headers === "object" && headers !== null) {
    for (const [name, value] of Object.entries(headers)) if (typeof value === "string") retry.set(name, value);
  }
  return new ApiError(error.message, {
    status,
    code: error.code === null || error.code === undefined ? null : String(error.code),
    type: error.type ?? null,
    retryAfter: retryAfterOf(retry),
    requestId: retry.get("x-request-id") ?? requestId,
  });
}

/** A resume the gateway refused (404: expired or unknown; 410: events dropped): no use trying again. */
function unresumable(error: unknown): unknown {
  if (!(error instanceof ApiError) || error.isNetwork) return error;
  return new ApiError(`The answer could not be resumed: ${error.message}`, {
    status: error.status,
    code: "connection_lost",
    type: error.type,
    requestId: error.requestId,
  });
}

function parseJSON(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

/** An unguessable stream id (crypto.getRandomValues works outside secure contexts too). */
export function newStreamId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "ui-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
