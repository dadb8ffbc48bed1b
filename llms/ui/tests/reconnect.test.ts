// @vitest-environment node
import { afterEach, describe, expect, it, vi } from "vitest";
import { RECONNECT, backoffBounds, backoffDelay, sleep } from "../src/api/backoff";
import { newStreamId, runChat, type RunEvent, type RunOptions } from "../src/api/chat";
import { Gateway } from "../src/api/client";
import { Watchdog } from "../src/api/watchdog";
import { applyRunEvent, finishMessage, newAnswer } from "../src/stores/message";
import { FakeGateway, FakeNetwork, chunk } from "./fake-gateway";

const FAST = { baseMs: 5, factor: 2, jitter: 0.25, tries: 3 };
const TOKENS = Array.from({ length: 12 }, (_, i) => `t${i + 1} `);
const FULL = TOKENS.join("");

function setup(fake: FakeGateway, extra: Partial<RunOptions> = {}) {
  const events: RunEvent[] = [];
  const message = newAnswer("a1", "m", 0);
  const controller = new AbortController();
  const network = new FakeNetwork();
  const options: RunOptions = {
    gateway: new Gateway({ fetch: fake.fetch, apiKey: () => "sk-test" }),
    request: { model: "m", messages: [{ role: "user", content: "hi" }] },
    streaming: true,
    signal: controller.signal,
    emit: (event) => {
      events.push(event);
      applyRunEvent(message, event, Date.now());
    },
    policy: FAST,
    network,
    random: () => 0.5,
    ...extra,
  };
  return { events, message, controller, network, options };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("backoff", () => {
  it("is about 1 s, 2 s, 4 s, within the jitter bounds", () => {
    expect([0, 1, 2].map((n) => backoffDelay(n, RECONNECT, () => 0.5))).toEqual([1000, 2000, 4000]);
    for (const attempt of [0, 1, 2]) {
      const [low, high] = backoffBounds(attempt);
      expect(low).toBe(1000 * 2 ** attempt * 0.75);
      expect(high).toBe(1000 * 2 ** attempt * 1.25);
      expect(backoffDelay(attempt, RECONNECT, () => 0)).toBe(low);
      expect(backoffDelay(attempt, RECONNECT, () => 0.999999)).toBeLessThanOrEqual(high);
      for (let i = 0; i < 200; i++) {
        const d = backoffDelay(attempt);
        expect(d).toBeGreaterThanOrEqual(low);
        expect(d).toBeLessThanOrEqual(high);
      }
    }
  });

  it("spreads clients apart (jitter)", () => {
    const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(0)));
    expect(delays.size).toBeGreaterThan(10);
  });

  it("sleeps, and stops sleeping on abort", async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const done = sleep(1000, controller.signal);
    controller.abort();
    await expect(done).rejects.toThrow();
  });
});

describe("Watchdog", () => {
  it("fires after 45 s without a byte, not while bytes keep coming", () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    const dog = new Watchdog(45_000, fired);
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(15_000); // a heartbeat every 15 s
      dog.kick();
    }
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(44_999);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fired).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(100_000);
    expect(fired).toHaveBeenCalledTimes(1);
  });

  it("never fires once stopped", () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    const dog = new Watchdog(45_000, fired);
    dog.stop();
    vi.advanceTimersByTime(100_000);
    expect(fired).not.toHaveBeenCalled();
  });
});

describe("runChat: streaming in resumable mode", () => {
  it("asks for a resumable stream with usage and the key, and folds it into the message", async () => {
    const fake = new FakeGateway(TOKENS);
    const { message, options } = setup(fake);
    const outcome = await runChat(options);
    expect(outcome).toEqual({ kind: "done" });
    const [first] = fake.requests;
    expect(first!.method).toBe("POST");
    expect(first!.url).toBe("/v1/chat/completions");
    expect(first!.headers["X-Stream-Resumable"]).toBe("true");
    expect(first!.headers.Authorization).toBe("Bearer sk-test");
    expect(first!.body).toMatchObject({ stream: true, stream_options: { include_usage: true }, model: "m" });
    expect(message.content).toBe(FULL);
    expect(message.streamId).toBe("chatcmpl-abc");
    expect(message.provider).toBe("fake");
    expect(message.lastEventId).toBe(12);
  });

  it("resumes after a drop with Last-Event-ID of the last event, nothing doubled or missing", async () => {
    const fake = new FakeGateway(TOKENS);
    fake.plans = [{ deliver: 4, then: "error" }, { deliver: 3, then: "close" }, {}];
    const { message, options, events } = setup(fake);
    const outcome = await runChat(options);
    expect(outcome).toEqual({ kind: "done" });
    expect(message.content).toBe(FULL);
    const resumes = fake.connections.slice(1);
    expect(resumes.map((r) => [r.method, r.url, r.headers["Last-Event-ID"]])).toEqual([
      ["GET", "/v1/streams/chatcmpl-abc", "4"],
      ["GET", "/v1/streams/chatcmpl-abc", "7"],
    ]);
    expect(events.filter((e) => e.type === "reconnecting")).toHaveLength(2);
  });

  it("skips events replayed twice by the server", async () => {
    const fake = new FakeGateway(TOKENS);
    fake.plans = [{ deliver: 5, then: "error" }, { overlap: 3 }];
    const { message, options } = setup(fake);
    expect(await runChat(options)).toEqual({ kind: "done" });
    expect(message.content).toBe(FULL);
  });

  it("counts heartbeats as life but not as events", async () => {
    const fake = new FakeGateway(TOKENS);
    fake.plans = [{ heartbeat: true }];
    const { message, options } = setup(fake);
    expect(await runChat(options)).toEqual({ kind: "done" });
    expect(message.content).toBe(FULL);
  });

  it("backs off about 1 s, 2 s, 4 s (with jitter) over 3 tries, then keeps the partial answer", async () => {
    const fake = new FakeGateway(TOKENS);
    fake.plans = [{ deliver: 3, then: "error" }, { network: true }, { network: true }, { network: true }];
    const { message, options, events } = setup(fake, { policy: RECONNECT, random: () => 1 });
    vi.useFakeTimers();
    const running = runChat(options);
    await vi.advanceTimersByTimeAsync(10_000);
    const outcome = await running;
    expect(outcome.kind).toBe("failed");
    if (outcome.kind !== "failed") return;
    expect(outcome.interrupted).toBe(true);
    expect(outcome.error.message).toMatch(/3 attempts/);
    const delays = events.flatMap((e) => (e.type === "reconnecting" ? [[e.attempt, e.delayMs]] : []));
    expect(delays).toEqual([
      [1, 1250],
      [2, 2500],
      [3, 5000],
    ]);
    expect(fake.connections).toHaveLength(4);
    finishMessage(message, outcome, 1);
    expect(message.state).toBe("failed");
    expect(message.interrupted).toBe(true);
    expect(message.content).toBe("t1 t2 t3 ");
  });

  it("starts counting tries again once a reconnect delivers events", async () => {
    const fake = new FakeGateway(TOKENS);
    fake.plans = [
      { deliver: 2, then: "error" },
      { network: true },
      { deliver: 2, then: "error" },
      { network: true },
      { network: true },
      {},
    ];
    const { message, options } = setup(fake);
    expect(await runChat(options)).toEqual({ kind: "done" });
    expect(message.content).toBe(FULL);
  });

  it("treats 45 s of silence as a drop (watchdog) and resumes", async () => {
    const fake = new FakeGateway(TOKENS);
    fake.plans = [{ deliver: 6, then: "hang" }, {}];
    const { message, options, events } = setup(fake, { watchdogMs: 45_000 });
    vi.useFakeTimers();
    const running = runChat(options);
    await vi.advanceTimersByTimeAsync(44_000);
    expect(fake.connections).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(2_000);
    const outcome = await running;
    expect(outcome).toEqual({ kind: "done" });
    expect(message.content).toBe(FULL);
    const reconnect = events.find((e) => e.type === "reconnecting");
    expect(reconnect).toMatchObject({ reason: expect.stringMatching(/45 s/) });
    expect(fake.connections[1]!.headers["Last-Event-ID"]).toBe("6");
  });

  it("gives up at once when the stream is gone (404)", async () => {
    const fake = new FakeGateway(TOKENS);
    fake.plans = [{ deliver: 3, then: "close" }, { status: 404 }];
    const { options } = setup(fake);
    const outcome = await runChat(options);
    expect(outcome.kind).toBe("failed");
    if (outcome.kind === "failed") {
      expect(outcome.interrupted).toBe(true);
      expect(outcome.error.status).toBe(404);
    }
    expect(fake.connections).toHaveLength(2);
  });

  it("falls back once to a non-streaming request when the stream fails before any byte", async () => {
    const fake = new FakeGateway(TOKENS);
    fake.plans = [{ network: true }];
    fake.completion = {
      id: "c",
      object: "chat.completion",
      model: "m",
      choices: [{ index: 0, message: { role: "assistant", content: "whole answer" }, finish_reason: "stop" }],
      usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
    };
    const { message, options, events } = setup(fake);
    expect(await runChat(options)).toEqual({ kind: "done" });
    expect(fake.connections).toHaveLength(2);
    expect(fake.connections[1]!.body).toMatchObject({ stream: false });
    expect((fake.connections[1]!.body as Record<string, unknown>).stream_options).toBeUndefined();
    expect(fake.connections[1]!.headers["X-Stream-Resumable"]).toBeUndefined();
    expect(events.find((e) => e.type === "request" && e.mode === "complete")).toMatchObject({ fallback: true });
    expect(message.content).toBe("whole answer");
    expect(message.fellBack).toBe(true);
    expect(message.usage?.completion_tokens).toBe(2);
  });

  it("does not fall back or retry a gateway error; a 429 keeps its Retry-After", async () => {
    const fake = new FakeGateway(TOKENS);
    fake.plans = [{ status: 429, headers: { "Retry-After": "17" } }];
    const { options } = setup(fake);
    const outcome = await runChat(options);
    expect(outcome.kind).toBe("failed");
    if (outcome.kind === "failed") {
      expect(outcome.error.status).toBe(429);
      expect(outcome.error.retryAfter).toBe(17);
      expect(outcome.error.message).toBe("error 429");
      expect(outcome.interrupted).toBe(false);
    }
    expect(fake.connections).toHaveLength(1);
  });

  it("uses one non-streaming request when streaming is off", async () => {
    const fake = new FakeGateway(TOKENS);
    fake.completion = {
      id: "c",
      object: "chat.completion",
      model: "m",
      choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
    };
    const { message, options } = setup(fake, { streaming: false });
    expect(await runChat(options)).toEqual({ kind: "done" });
    expect(fake.connections).toHaveLength(1);
    expect(fake.connections[0]!.body).toMatchObject({ stream: false });
    expect(message.content).toBe("ok");
    expect(message.mode).toBe("complete");
  });

  it("names the stream in its request, so Stop can cancel before any byte arrives", async () => {
    const fake = new FakeGateway(TOKENS);
    const { options } = setup(fake);
    await runChat(options);
    const post = fake.requests.find((r) => r.method === "POST" && r.url === "/v1/chat/completions");
    expect(post?.headers["X-Stream-Id"]).toMatch(/^ui-[0-9a-f]{32}$/);
    expect(newStreamId()).not.toBe(newStreamId());
  });

  it("Stop aborts the read and cancels the stream on the gateway", async () => {
    const fake = new FakeGateway(TOKENS);
    fake.plans = [{ deliver: 3, then: "hang" }];
    const setupResult = setup(fake);
    const { options, controller, message } = setupResult;
    const emit = options.emit;
    options.emit = (event) => {
      emit(event);
      if (event.type === "chunk" && event.seq === 3) controller.abort();
    };
    const outcome = await runChat(options);
    expect(outcome).toEqual({ kind: "stopped", by: "user" });
    const cancel = fake.requests.find((r) => r.url.endsWith("/cancel"));
    expect(cancel).toMatchObject({ method: "POST", url: "/v1/streams/chatcmpl-abc/cancel" });
    expect(message.content).toBe("t1 t2 t3 ");
  });

  it("reports an error event in the stream as a failure after the text before it", async () => {
    const fake = new FakeGateway(["a", "b"]);
    fake.log.splice(2, 0, JSON.stringify({ error: { message: "upstream reset", type: "server_error", param: null, code: "upstream_disconnected" } }));
    const { options, message } = setup(fake);
    const outcome = await runChat(options);
    expect(outcome.kind).toBe("failed");
    if (outcome.kind === "failed") {
      expect(outcome.interrupted).toBe(false);
      expect(outcome.error.code).toBe("upstream_disconnected");
      expect(outcome.error.message).toBe("upstream reset");
    }
    expect(message.content).toBe("ab");
  });

  it("reads a pre-output failure sent as an event (the response had started with a heartbeat)", async () => {
    const fake = new FakeGateway([]);
    fake.log.length = 0;
    fake.log.push(
      JSON.stringify({
        status: 429,
        headers: { "Retry-After": "30" },
        body: { error: { message: "Rate limit reached", type: "rate_limit_error", param: null, code: "rate_limit_exceeded" } },
      }),
    );
    fake.plans = [{ heartbeat: true, then: "close" }];
    const { options } = setup(fake);
    const outcome = await runChat(options);
    expect(outcome.kind).toBe("failed");
    if (outcome.kind === "failed") {
      expect(outcome.error).toMatchObject({ status: 429, retryAfter: 30, message: "Rate limit reached" });
    }
    expect(fake.connections).toHaveLength(1);
  });

  it("a cancel from elsewhere ends the answer as stopped", async () => {
    const fake = new FakeGateway(["a"]);
    fake.log.splice(1, 0, JSON.stringify({ error: { message: "The stream was cancelled.", type: "invalid_request_error", param: null, code: "cancelled" } }));
    const { options } = setup(fake);
    expect(await runChat(options)).toEqual({ kind: "stopped", by: "elsewhere" });
  });

  it("passes status events on (retries and fallbacks before the answer)", async () => {
    const fake = new FakeGateway(["x"]);
    fake.log.unshift(`status:${JSON.stringify({ status: "falling_back", provider: "a", next_provider: "b", attempt: 1, delay_s: 0, reason: "503" })}`);
    const { options, events, message } = setup(fake);
    const states: string[] = [];
    const emit = options.emit;
    options.emit = (event) => {
      emit(event);
      states.push(message.state!);
    };
    expect(await runChat(options)).toEqual({ kind: "done" });
    expect(events.find((e) => e.type === "status")).toMatchObject({ status: { status: "falling_back", next_provider: "b" } });
    expect(states).toContain("retrying");
    expect(message.state).toBe("streaming");
  });

  it("pauses while offline and resumes when back online, without spending tries", async () => {
    const fake = new FakeGateway(TOKENS);
    fake.plans = [{ deliver: 5, then: "hang" }, {}];
    const { options, events, network, message } = setup(fake);
    const emit = options.emit;
    options.emit = (event) => {
      emit(event);
      if (event.type === "chunk" && event.seq === 5) queueMicrotask(() => network.goOffline());
    };
    const running = runChat(options);
    await vi.waitFor(() => expect(events.some((e) => e.type === "paused")).toBe(true));
    expect(message.state).toBe("retrying");
    expect(fake.connections).toHaveLength(1);
    network.goOnline();
    expect(await running).toEqual({ kind: "done" });
    expect(message.content).toBe(FULL);
    expect(fake.connections[1]!.headers["Last-Event-ID"]).toBe("5");
  });

  it("keeps tool calls and reasoning apart from the text", async () => {
    const fake = new FakeGateway([]);
    fake.log.length = 0;
    const reasoning = chunk("", { content: undefined, reasoning_content: "Let me think." });
    const call1 = chunk("", {
      content: undefined,
      tool_calls: [{ index: 0, id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"ci' } }],
    });
    const call2 = chunk("", { content: undefined, tool_calls: [{ index: 0, function: { arguments: 'ty":"Paris"}' } }] });
    for (const c of [reasoning, call1, call2]) fake.log.push(JSON.stringify(c));
    fake.log.push("[DONE]");
    const { options, message } = setup(fake);
    expect(await runChat(options)).toEqual({ kind: "done" });
    expect(message.reasoning).toBe("Let me think.");
    expect(message.content).toBe("");
    expect(message.toolCalls).toEqual([{ index: 0, id: "call_1", type: "function", name: "get_weather", arguments: '{"city":"Paris"}' }]);
  });
});
