import { describe, expect, it } from "vitest";
import { computed, reactive, watch } from "vue";
import type { RunEvent, RunOptions, RunOutcome } from "../src/api/chat";
import { Gateway } from "../src/api/client";
import { ApiError } from "../src/api/errors";
import { retryWait } from "../src/lib/failure";
import type { FrameScheduler } from "../src/lib/frame";
import { AuthStore } from "../src/stores/auth";
import { ChatController, wireMessages } from "../src/stores/chat";
import { ThreadDB, type Thread } from "../src/stores/db";
import { applyRunEvent, finishMessage, newAnswer, orphaned, statsOf, type ChatMessage } from "../src/stores/message";
import { DEFAULTS } from "../src/stores/settings";
import { ThreadStore } from "../src/stores/threads";
import { chunk } from "./fake-gateway";

function answer(): ChatMessage {
  return newAnswer("a", "m", 1000);
}

describe("the answer's state machine", () => {
  it("connecting → waiting → streaming → done, with timings", () => {
    const m = answer();
    expect(m.state).toBe("connecting");
    applyRunEvent(m, { type: "request", mode: "stream", fallback: false }, 1000);
    applyRunEvent(m, { type: "open", streamId: "s1", provider: null }, 1100);
    expect(m.state).toBe("waiting");
    expect(m.streamId).toBe("s1");
    // A role-only first chunk is not output.
    applyRunEvent(m, { type: "chunk", chunk: chunk("", { role: "assistant" }), seq: 1 }, 1200);
    expect(m.state).toBe("waiting");
    applyRunEvent(m, { type: "chunk", chunk: chunk("Hel"), seq: 2 }, 1500);
    expect(m.state).toBe("streaming");
    expect(m.firstTokenAt).toBe(1500);
    applyRunEvent(m, { type: "chunk", chunk: chunk("lo"), seq: 3 }, 2000);
    const usage = { ...chunk(""), choices: [], usage: { prompt_tokens: 5, completion_tokens: 20, total_tokens: 25 } };
    applyRunEvent(m, { type: "chunk", chunk: usage, seq: 4 }, 2500);
    finishMessage(m, { kind: "done" }, 3500);
    expect(m).toMatchObject({ state: "done", content: "Hello", lastEventId: 4, endedAt: 3500 });
    const stats = statsOf(m, 9999);
    expect(stats.ttftMs).toBe(500);
    expect(stats.elapsedMs).toBe(2500);
    expect(stats.exact).toBe(true);
    expect(stats.tokensPerS).toBeCloseTo(10); // 20 tokens in the 2 s after the first
  });

  it("shows retries and fallbacks before the first token, then streams", () => {
    const m = answer();
    applyRunEvent(m, { type: "open", streamId: "s", provider: null }, 1);
    applyRunEvent(
      m,
      { type: "status", status: { status: "falling_back", provider: "a", next_provider: "b", attempt: 1, reason: "HTTP 503" } },
      2,
    );
    expect(m.state).toBe("retrying");
    expect(m.notice).toMatch(/Falling back to “b”\./);
    expect(m.provider).toBe("b");
    applyRunEvent(m, { type: "chunk", chunk: chunk("x"), seq: 3 }, 3);
    expect(m.state).toBe("streaming");
    expect(m.notice).toBeUndefined();
  });

  it("reconnecting mid-answer is 'retrying', and back to streaming when reconnected", () => {
    const m = answer();
    applyRunEvent(m, { type: "chunk", chunk: chunk("x"), seq: 1 }, 2);
    applyRunEvent(m, { type: "reconnecting", attempt: 1, tries: 3, delayMs: 1100, reason: "reset" }, 3);
    expect(m.state).toBe("retrying");
    expect(m.notice).toMatch(/Reconnecting in 1.1 s \(try 1 of 3\)/);
    applyRunEvent(m, { type: "open", streamId: "s", provider: "p" }, 4);
    expect(m.state).toBe("streaming");
    expect(m.reconnects).toBe(1);
  });

  it("thinking, then answering: the thinking time is kept", () => {
    const m = answer();
    applyRunEvent(m, { type: "chunk", chunk: chunk("", { content: undefined, reasoning_content: "hmm" }), seq: 1 }, 2000);
    expect(m.state).toBe("streaming");
    expect(m.reasoning).toBe("hmm");
    applyRunEvent(m, { type: "chunk", chunk: chunk("Answer"), seq: 2 }, 5000);
    expect(m.reasoningMs).toBe(3000);
    expect(m.content).toBe("Answer");
  });

  it("stopped and failed keep the partial text", () => {
    const stopped = answer();
    applyRunEvent(stopped, { type: "chunk", chunk: chunk("part"), seq: 1 }, 2);
    finishMessage(stopped, { kind: "stopped", by: "user" }, 3);
    expect(stopped).toMatchObject({ state: "stopped", content: "part" });

    const failed = answer();
    applyRunEvent(failed, { type: "chunk", chunk: chunk("part"), seq: 1 }, 2);
    finishMessage(failed, { kind: "failed", error: new ApiError("lost", { code: "connection_lost" }), interrupted: true }, 3);
    expect(failed).toMatchObject({ state: "failed", content: "part", interrupted: true, error: { message: "lost" } });
  });

  it("a non-streaming answer arrives whole", () => {
    const m = answer();
    applyRunEvent(m, { type: "request", mode: "complete", fallback: false }, 1);
    applyRunEvent(
      m,
      {
        type: "completion",
        provider: "local",
        completion: {
          id: "c",
          object: "chat.completion",
          model: "m",
          choices: [
            {
              index: 0,
              message: {
                role: "assistant",
                content: null,
                tool_calls: [{ id: "call_1", type: "function", function: { name: "f", arguments: "{}" } }],
              },
              finish_reason: "tool_calls",
            },
          ],
        },
      },
      5,
    );
    finishMessage(m, { kind: "done" }, 5);
    expect(m).toMatchObject({ state: "done", provider: "local", finishReason: "tool_calls", mode: "complete" });
    expect(m.toolCalls?.[0]?.name).toBe("f");
  });

  it("an answer found running with no stream to follow becomes failed/interrupted", () => {
    const m = { ...answer(), content: "abc", state: "streaming" as const };
    expect(orphaned(m)).toMatchObject({ state: "failed", interrupted: true, error: { code: "interrupted" } });
    const followable = { ...m, streamId: "s1", mode: "stream" as const };
    expect(orphaned(followable)).toBe(followable); // the controller follows it again
    expect(orphaned({ ...followable, mode: "complete" })).toMatchObject({ state: "failed" });
    const done = { ...answer(), state: "done" as const };
    expect(orphaned(done)).toBe(done);
  });
});

describe("the conversation sent to the API", () => {
  it("has the system prompt first, user turns, and non-empty answers", () => {
    const thread = {
      systemPrompt: "Be brief.",
      messages: [
        { id: "1", role: "user", content: "Hi", createdAt: 1 },
        { ...newAnswer("2", "m", 1), content: "Hello!", state: "done" },
        { id: "3", role: "user", content: "Again", createdAt: 2 },
        { ...newAnswer("4", "m", 1), content: "", state: "failed" },
      ],
    } as unknown as Thread;
    expect(wireMessages(thread)).toEqual([
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello!" },
      { role: "user", content: "Again" },
    ]);
  });
});

/** A frame scheduler the test advances by hand: one `frame()` = one animation frame. */
function manualFrames() {
  const pending: (() => void)[] = [];
  const schedule = (callback: () => void): FrameScheduler => {
    let queued = false;
    const run = (): void => {
      queued = false;
      callback();
    };
    return {
      request() {
        if (queued) return;
        queued = true;
        pending.push(() => queued && run());
      },
      cancel() {
        queued = false;
      },
      flush() {
        if (queued) run();
      },
    };
  };
  const frame = (): void => {
    for (const f of pending.splice(0)) f();
  };
  return { schedule, frame };
}

describe("ChatController", () => {
  async function setup(run: (o: RunOptions) => Promise<RunOutcome>) {
    const threads = new ThreadStore({ db: new ThreadDB(`chat-${Math.random()}`), channel: null });
    await threads.load();
    const settings = reactive({ ...DEFAULTS, temperature: 0.2, maxTokens: 64 });
    const frames = manualFrames();
    const auth = new AuthStore(null);
    const chat = new ChatController({
      gateway: new Gateway({ fetch: async () => new Response("") }),
      threads,
      settings,
      auth,
      models: { selected: computed(() => "m") },
      run,
      schedule: frames.schedule,
    });
    return { threads, settings, frames, chat, auth };
  }

  it("appends tokens to the store at once but renders at most once per frame", async () => {
    let emit!: (e: RunEvent) => void;
    let finish!: (o: RunOutcome) => void;
    let sent: RunOptions | null = null;
    const { chat, threads, frames } = await setup(
      (options) =>
        new Promise((resolve) => {
          sent = options;
          emit = options.emit;
          finish = resolve;
        }),
    );
    await chat.send("Hello");
    await expect.poll(() => sent).not.toBeNull();
    expect(sent!.request).toMatchObject({
      model: "m",
      temperature: 0.2,
      max_tokens: 64,
      messages: [{ role: "user", content: "Hello" }],
    });
    const thread = threads.state.current!;
    const live = thread.messages[1]!;
    let renders = 0;
    watch(() => live.content, () => renders++, { flush: "sync" });

    for (let i = 0; i < 500; i++) emit({ type: "chunk", chunk: chunk(`${i} `), seq: i + 1 });
    expect(live.content).toBe(""); // nothing rendered between frames
    frames.frame();
    expect(renders).toBe(1);
    expect(live.content.split(" ").length).toBe(501);
    expect(live.state).toBe("streaming");
    for (let i = 500; i < 1000; i++) emit({ type: "chunk", chunk: chunk(`${i} `), seq: i + 1 });
    frames.frame();
    frames.frame(); // an idle frame renders nothing
    expect(renders).toBe(2);
    expect(chat.isRunning(thread.id)).toBe(true);

    finish({ kind: "done" });
    await chat.settled();
    expect(live.state).toBe("done");
    expect(live.content.trim().split(" ")).toHaveLength(1000);
    expect(chat.isRunning(thread.id)).toBe(false);
  });

  it("regenerates the last answer and edits a user message", async () => {
    const requests: RunOptions[] = [];
    const { chat, threads } = await setup(async (options) => {
      requests.push(options);
      options.emit({ type: "chunk", chunk: chunk(`answer ${requests.length}`), seq: 1 });
      return { kind: "done" };
    });
    await chat.send("First");
    await chat.settled();
    const thread = threads.state.current!;
    expect(thread.messages.map((m) => m.content)).toEqual(["First", "answer 1"]);

    await chat.regenerate();
    expect(thread.messages.map((m) => m.content)).toEqual(["First", "answer 2"]);
    expect(requests[1]!.request.messages).toEqual([{ role: "user", content: "First" }]);

    await chat.edit(thread.messages[0]!.id, "Changed");
    expect(thread.messages.map((m) => m.content)).toEqual(["Changed", "answer 3"]);
    expect(requests[2]!.request.messages).toEqual([{ role: "user", content: "Changed" }]);
  });

  it("stops the running answer", async () => {
    const { chat, threads } = await setup(
      (options) =>
        new Promise((resolve) => {
          if (options.signal.aborted) resolve({ kind: "stopped", by: "user" });
          options.signal.addEventListener("abort", () => resolve({ kind: "stopped", by: "user" }));
        }),
    );
    await chat.send("Hi");
    const thread = threads.state.current!;
    expect(chat.isRunning(thread.id)).toBe(true);
    await new Promise((r) => setTimeout(r, 10)); // the run has started
    chat.stop();
    await chat.settled();
    expect(thread.messages[1]!.state).toBe("stopped");
    expect(chat.isRunning(thread.id)).toBe(false);
  });

  it("asks for a key on 401 and tries again with it", async () => {
    let calls = 0;
    const { chat, threads, auth } = await setup(async () => {
      calls += 1;
      if (calls === 1) return { kind: "failed", error: new ApiError("Missing API key.", { status: 401 }), interrupted: false };
      return { kind: "done" };
    });
    await chat.send("Hi");
    await expect.poll(() => auth.state.asking).toBe(true);
    auth.submit("sk-1");
    await chat.settled();
    expect(calls).toBe(2);
    expect(threads.state.current!.messages[1]!.state).toBe("done");
  });

  it("keeps a 429 in the answer only (no banner), with its Retry-After for the countdown", async () => {
    const { chat, threads } = await setup(async () => ({
      kind: "failed",
      error: new ApiError("Rate limit reached.", { status: 429, retryAfter: 20 }),
      interrupted: false,
    }));
    await chat.send("Hi");
    await chat.settled();
    expect(chat.state.banner).toBeNull();
    const failed = threads.state.current!.messages[1]!;
    expect(failed).toMatchObject({ state: "failed", error: { status: 429, retryAfter: 20 } });
    expect(retryWait(failed.error, failed.endedAt, failed.endedAt! + 5000)).toBe(15);
  });
});
