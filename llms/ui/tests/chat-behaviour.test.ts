/**
 * The chat's behaviour around an answer (issue 15): only the parameters set are sent, failures
 * in plain words, a max-tokens cut continued, versions instead of deletions, answers followed
 * again after a reload or from another tab, and a key asked for again when refused.
 */
import { describe, expect, it, vi } from "vitest";
import { computed, reactive } from "vue";
import { runChat, type RunEvent, type RunOptions, type RunOutcome } from "../src/api/chat";
import { Gateway } from "../src/api/client";
import { ApiError } from "../src/api/errors";
import { heartbeatOf, watchdogFor } from "../src/api/watchdog";
import type { FrameScheduler } from "../src/lib/frame";
import { explainError } from "../src/lib/failure";
import { AuthStore } from "../src/stores/auth";
import { CONTINUE_PROMPT, ChatController } from "../src/stores/chat";
import { ThreadDB } from "../src/stores/db";
import { MemoryLocks, lockName } from "../src/stores/locks";
import { newAnswer, type ChatMessage } from "../src/stores/message";
import { ModelsStore } from "../src/stores/models";
import { DEFAULTS, SETTINGS_KEY, loadSettings, saveSettings } from "../src/stores/settings";
import { ThreadStore, type ChannelLike } from "../src/stores/threads";
import { branch, switchVersion, versionOf } from "../src/stores/versions";
import { FakeGateway, chunk } from "./fake-gateway";

type Run = (options: RunOptions) => Promise<RunOutcome>;

const immediate = (callback: () => void): FrameScheduler => ({ request: callback, cancel() {}, flush() {} });

/** Two ends of one BroadcastChannel, delivering asynchronously like the real one. */
function channelPair(): [ChannelLike, ChannelLike] {
  const ends = [0, 1].map(() => ({ onmessage: null as ChannelLike["onmessage"], peer: null as ChannelLike | null }));
  const make = (self: (typeof ends)[0]): ChannelLike => ({
    get onmessage() {
      return self.onmessage;
    },
    set onmessage(value) {
      self.onmessage = value;
    },
    postMessage(message: unknown) {
      const data = structuredClone(message);
      setTimeout(() => self.peer?.onmessage?.({ data } as MessageEvent), 0);
    },
    close() {},
  });
  const a = make(ends[0]!);
  const b = make(ends[1]!);
  ends[0]!.peer = b;
  ends[1]!.peer = a;
  return [a, b];
}

interface Tab {
  chat: ChatController;
  threads: ThreadStore;
  auth: AuthStore;
}

async function tab(run: Run, shared: { db?: ThreadDB; channel?: ChannelLike | null; locks?: MemoryLocks } = {}): Promise<Tab> {
  const threads = new ThreadStore({ db: shared.db ?? new ThreadDB(`behaviour-${Math.random()}`), channel: shared.channel ?? null });
  await threads.load();
  const auth = new AuthStore(null);
  const chat = new ChatController({
    gateway: new Gateway({ fetch: async () => new Response("", { status: 404 }) }),
    threads,
    settings: reactive({ ...DEFAULTS }),
    auth,
    models: { selected: computed(() => "m") },
    run,
    schedule: immediate,
    locks: shared.locks ?? new MemoryLocks(),
  });
  return { chat, threads, auth };
}

/** A run that answers `text`, chunk by chunk, ending with `finish`. */
function answering(text: (n: number, o: RunOptions) => string, finish = "stop", seen: RunOptions[] = []): Run {
  return async (options) => {
    seen.push(options);
    const c = chunk(text(seen.length, options));
    c.choices[0]!.finish_reason = finish;
    options.emit({ type: "chunk", chunk: c, seq: 1 });
    return { kind: "done" };
  };
}

describe("parameters", () => {
  it("send no temperature unless the user set one", async () => {
    expect(DEFAULTS.temperature).toBeNull();
    const seen: RunOptions[] = [];
    const { chat } = await tab(answering(() => "ok", "stop", seen));
    await chat.send("Hi");
    await chat.settled();
    expect(seen[0]!.request).not.toHaveProperty("temperature");
    expect(seen[0]!.request).not.toHaveProperty("max_tokens");
  });

  it("read the old default 0.7, saved without a version, as unset; a chosen value stays", () => {
    const store = new Map<string, string>();
    const storage = { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => void store.set(k, v) };
    store.set(SETTINGS_KEY, JSON.stringify({ temperature: 0.7, streaming: true }));
    expect(loadSettings(storage).temperature).toBeNull();
    store.set(SETTINGS_KEY, JSON.stringify({ temperature: 0.4 }));
    expect(loadSettings(storage).temperature).toBe(0.4);
    saveSettings(storage, { ...DEFAULTS, temperature: 0.7 });
    expect(JSON.parse(store.get(SETTINGS_KEY)!)).toMatchObject({ v: 2, temperature: 0.7 });
    expect(loadSettings(storage).temperature).toBe(0.7); // chosen after the upgrade: kept
  });
});

describe("failures in plain words", () => {
  it("a 429: one plain sentence, the provider's text and the request id in the details", () => {
    const raw = "Rate limit reached for gpt-4o on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 24s.";
    const error = new ApiError(raw, { status: 429, code: "rate_limit_exceeded", retryAfter: 24, requestId: "req-1" });
    const explained = explainError(error.toJSON(), false);
    expect(explained).toMatchObject({ title: "Rate limited", text: "Too many requests: the rate limit was reached.", rateLimited: true });
    expect(explained.text).not.toContain("Please");
    expect(explained.details).toEqual([
      ["Message", raw],
      ["HTTP status", "429"],
      ["Code", "rate_limit_exceeded"],
      ["Request id", "req-1"],
    ]);
  });

  it("network trouble and lost connections: no exception text in the sentence", () => {
    const network = new ApiError("Cannot reach the gateway (Failed to fetch).", { status: 0, code: "network_error" });
    expect(explainError(network.toJSON(), false).text).toBe("The gateway could not be reached. Check the connection.");
    const lost = new ApiError("The connection was lost and 3 attempts to resume failed: TypeError", { code: "connection_lost" });
    const explained = explainError(lost.toJSON(), true);
    expect(explained.title).toBe("The answer was interrupted");
    expect(explained.text).toBe("The connection to the gateway was lost and could not be restored. The part received is kept.");
  });

  it("a request the gateway refused keeps the gateway's own words", () => {
    const bad = new ApiError("max_tokens must be at least 1", { status: 400, code: "invalid_value" });
    expect(explainError(bad.toJSON(), false).text).toBe("max_tokens must be at least 1.");
  });
});

describe("versions", () => {
  const msg = (id: string, content: string): ChatMessage => ({ id, role: id.startsWith("u") ? "user" : "assistant", content, createdAt: 1 });

  it("branch keeps the old turn and switching brings it back, nested versions included", () => {
    const messages = [msg("u1", "Q"), msg("a1", "A1")];
    branch(messages, 1, [msg("a2", "A2")]);
    expect(messages.map((m) => m.content)).toEqual(["Q", "A2"]);
    expect(versionOf(messages[1]!)).toEqual({ index: 2, count: 2 });
    messages.push(msg("u2", "Q2"), msg("a3", "A3"));
    branch(messages, 0, [msg("u3", "Q edited")]);
    expect(messages.map((m) => m.content)).toEqual(["Q edited"]);
    expect(switchVersion(messages, 0, 0)).toBe(true);
    expect(messages.map((m) => m.content)).toEqual(["Q", "A2", "Q2", "A3"]);
    expect(versionOf(messages[1]!)).toEqual({ index: 2, count: 2 }); // the nested versions kept
    expect(switchVersion(messages, 1, 0)).toBe(true);
    expect(messages.map((m) => m.content)).toEqual(["Q", "A1"]);
    expect(switchVersion(messages, 1, 5)).toBe(false);
  });

  it("regenerate and edit keep every version, saved with the thread", async () => {
    const db = new ThreadDB(`versions-${Math.random()}`);
    const { chat, threads } = await tab(answering((n) => `answer ${n}`), { db });
    await chat.send("First");
    await chat.settled();
    await chat.regenerate();
    const thread = threads.state.current!;
    expect(thread.messages.map((m) => m.content)).toEqual(["First", "answer 2"]);
    expect(versionOf(thread.messages[1]!)).toEqual({ index: 2, count: 2 });
    await chat.showVersion(thread.messages[1]!.id, 0);
    expect(thread.messages.map((m) => m.content)).toEqual(["First", "answer 1"]);

    await chat.edit(thread.messages[0]!.id, "Changed");
    expect(thread.messages.map((m) => m.content)).toEqual(["Changed", "answer 3"]);
    expect(versionOf(thread.messages[0]!)).toEqual({ index: 2, count: 2 });
    const reopened = await new ThreadStore({ db, channel: null }).open(thread.id);
    expect(reopened!.messages.map((m) => m.content)).toEqual(["Changed", "answer 3"]);
    const old = reopened!.messages[0]!.versions![0]!;
    expect(old.map((m) => m.content)).toEqual(["First", "answer 1"]);
    expect(versionOf(old[1]!)).toEqual({ index: 1, count: 2 });
  });
});

describe("a max-tokens cut", () => {
  it("is continued into the same answer", async () => {
    const seen: RunOptions[] = [];
    const { chat, threads } = await tab(answering((n) => (n === 1 ? "The start, " : "and the end."), "length", seen));
    await chat.send("Tell me");
    await chat.settled();
    const answer = threads.state.current!.messages[1]!;
    expect(answer).toMatchObject({ state: "done", finishReason: "length" });
    await chat.continueAnswer(answer.id);
    expect(seen[1]!.request.messages).toEqual([
      { role: "user", content: "Tell me" },
      { role: "assistant", content: "The start, " },
      { role: "user", content: CONTINUE_PROMPT },
    ]);
    expect(seen[1]!.streamId).not.toBe(seen[0]!.streamId);
    expect(threads.state.current!.messages).toHaveLength(2);
    expect(answer).toMatchObject({ content: "The start, and the end.", continued: 1, state: "done" });
  });
});

describe("an answer running when its page went away", () => {
  async function savedRunning(db: ThreadDB, message: Partial<ChatMessage>): Promise<string> {
    const store = new ThreadStore({ db, channel: null });
    const thread = await store.create();
    thread.messages.push({ id: "u", role: "user", content: "hi", createdAt: 1 });
    thread.messages.push({ ...newAnswer("a", "m", 1), content: "partial", state: "streaming", ...message });
    await store.save(thread);
    return thread.id;
  }

  it("is followed again from the last event seen after a reload", async () => {
    const db = new ThreadDB(`reload-${Math.random()}`);
    const id = await savedRunning(db, { streamId: "ui-s1", lastEventId: 7, mode: "stream" });
    const seen: RunOptions[] = [];
    const { chat, threads } = await tab(async (options) => {
      seen.push(options);
      options.emit({ type: "chunk", chunk: chunk(" and the rest"), seq: 8 });
      return { kind: "done" };
    }, { db });
    const thread = (await threads.open(id))!;
    chat.adopt(thread);
    await expect.poll(() => thread.messages[1]!.state).toBe("done");
    expect(seen[0]!.resume).toEqual({ streamId: "ui-s1", lastEventId: 7 });
    expect(thread.messages[1]!.content).toBe("partial and the rest");
  });

  it("with no stream to follow, is marked interrupted", async () => {
    const db = new ThreadDB(`orphan-${Math.random()}`);
    const id = await savedRunning(db, { mode: "complete", streamId: "ui-s2" });
    const { chat, threads } = await tab(async () => ({ kind: "done" }), { db });
    const thread = (await threads.open(id))!;
    chat.adopt(thread);
    await expect.poll(() => thread.messages[1]!.state).toBe("failed");
    expect(thread.messages[1]).toMatchObject({ interrupted: true, error: { code: "interrupted" } });
  });

  it("is mirrored while another tab runs it, stopped from there, and taken over when that tab closes", async () => {
    const db = new ThreadDB(`tabs-${Math.random()}`);
    const locks = new MemoryLocks();
    const [channelA, channelB] = channelPair();
    let emitA!: (event: RunEvent) => void;
    let runsA = 0;
    const a = await tab(
      (options) =>
        new Promise((resolve) => {
          emitA = options.emit;
          runsA += 1;
          options.signal.addEventListener("abort", () => resolve({ kind: "stopped", by: "user" }));
        }),
      { db, channel: channelA, locks },
    );
    const bRuns: RunOptions[] = [];
    const b = await tab(
      (options) => {
        bRuns.push(options);
        options.emit({ type: "chunk", chunk: chunk(" B"), seq: 3 });
        return Promise.resolve({ kind: "done" });
      },
      { db, channel: channelB, locks },
    );
    await a.chat.send("Hi");
    const threadA = a.threads.state.current!;
    const answerId = threadA.messages[1]!.id;
    await expect.poll(() => runsA).toBe(1);
    expect(locks.isHeld(lockName(answerId))).toBe(true);
    emitA({ type: "chunk", chunk: chunk("A"), seq: 1 });
    emitA({ type: "chunk", chunk: chunk("A"), seq: 2 });
    await a.threads.save(threadA);

    // Tab B opens the thread: A holds the answer, so B mirrors it and does not run it.
    const threadB = (await b.threads.open(threadA.id))!;
    b.chat.adopt(threadB);
    expect(b.chat.isBusy(threadB)).toBe(true);
    await new Promise((r) => setTimeout(r, 20));
    expect(bRuns).toHaveLength(0);

    // Stop in B reaches A's run.
    b.chat.stop();
    await a.chat.settled();
    expect(threadA.messages[1]!.state).toBe("stopped");
    await expect.poll(() => threadB.messages[1]!.state).toBe("stopped");
    expect(bRuns).toHaveLength(0);

    // A new answer in A; A "closes" (its run ends without saving an end, its lock goes): B follows it.
    await a.chat.send("Again");
    const second = threadA.messages[3]!;
    await expect.poll(() => runsA).toBe(2);
    expect(locks.isHeld(lockName(second.id))).toBe(true);
    emitA({ type: "chunk", chunk: chunk("A2"), seq: 1 });
    emitA({ type: "chunk", chunk: chunk("A2"), seq: 2 });
    await a.threads.save(threadA);
    await expect.poll(() => threadB.messages[3]?.content, { timeout: 5000 }).toBe("A2A2");
    b.chat.adopt(threadB);
    a.threads.dispose(); // the closed tab sends nothing more…
    locks.drop(lockName(second.id)); // …and the browser releases its lock
    await expect.poll(() => bRuns.length).toBe(1);
    expect(bRuns[0]!.resume).toMatchObject({ streamId: second.streamId, lastEventId: 2 });
    await expect.poll(() => threadB.messages[3]!.state).toBe("done");
    expect(threadB.messages[3]!.content).toBe("A2A2 B");
  });
});

describe("the API key", () => {
  it("is asked for again while the key given is refused", async () => {
    let calls = 0;
    const { chat, threads, auth } = await tab(async () => {
      calls += 1;
      if (calls < 3) return { kind: "failed", error: new ApiError("Invalid API key.", { status: 401 }), interrupted: false };
      return { kind: "done" };
    });
    await chat.send("Hi");
    await expect.poll(() => auth.state.asking).toBe(true);
    auth.submit("sk-wrong");
    await expect.poll(() => auth.state.reason).toBe("That key was not accepted either. Check it and try again.");
    expect(auth.state.asking).toBe(true);
    auth.submit("sk-right");
    await chat.settled();
    expect(calls).toBe(3);
    expect(threads.state.current!.messages[1]!.state).toBe("done");
  });

  it("the model list asks again after a wrong key, and reloads when a key is set in Settings", async () => {
    const auth = new AuthStore(null);
    const gateway = new Gateway({
      apiKey: () => auth.key,
      fetch: async (_url, init) => {
        const key = (init?.headers as Record<string, string>).Authorization;
        if (key !== "Bearer sk-right") return new Response('{"error":{"message":"Invalid API key."}}', { status: 401 });
        return Response.json({ data: [{ id: "m1", object: "model", owned_by: "p" }] });
      },
    });
    const models = new ModelsStore(gateway, reactive({ ...DEFAULTS }), auth);
    auth.onKeyChange(() => {
      if (!models.state.loading) void models.load();
    });
    const loading = models.load();
    await expect.poll(() => auth.state.asking).toBe(true);
    auth.submit("sk-wrong");
    await expect.poll(() => auth.state.reason).toMatch(/not accepted either/);
    auth.cancel();
    await loading;
    expect(models.state.error).toBe("Invalid API key.");
    // Settings → "Set a key…": nobody waits on the dialog, the list reloads by itself.
    void auth.ask("Enter the key");
    auth.submit("sk-right");
    await expect.poll(() => models.state.models.map((m) => m.id)).toEqual(["m1"]);
    expect(models.state.error).toBeNull();
  });
});

describe("the chat list", () => {
  it("drops empty chats left by older versions, keeps recent ones and those with a system prompt", async () => {
    const db = new ThreadDB(`empty-${Math.random()}`);
    let t = 1_000_000;
    const old = new ThreadStore({ db, channel: null, now: () => t });
    const empty = await old.create();
    const prompted = await old.create({ systemPrompt: "Be brief." });
    const used = await old.create();
    used.messages.push({ id: "u", role: "user", content: "hi", createdAt: t });
    await old.save(used);
    t += 120_000;
    const recent = await old.create();
    const later = new ThreadStore({ db, channel: null, now: () => t });
    await later.load();
    expect(later.state.threads.map((m) => m.id).sort()).toEqual([prompted.id, used.id, recent.id].sort());
    expect(await db.get(empty.id)).toBeNull();
  });
});

describe("the watchdog", () => {
  it("follows the heartbeat the gateway names (X-Heartbeat-Interval), not a fixed 45 s", async () => {
    expect(heartbeatOf(new Headers({ "X-Heartbeat-Interval": "2.5" }))).toBe(2.5);
    expect(heartbeatOf(new Headers({ "X-Heartbeat-Interval": "soon" }))).toBeNull();
    expect(heartbeatOf(new Headers())).toBeNull();
    expect(watchdogFor(15)).toBe(45_000);
    expect(watchdogFor(60)).toBe(180_000);

    const fake = new FakeGateway(["a", "b", "c"]);
    fake.plans = [{ deliver: 2, then: "hang", headers: { "X-Heartbeat-Interval": "2" } }, {}];
    const events: RunEvent[] = [];
    vi.useFakeTimers();
    try {
      const running = runChat({
        gateway: new Gateway({ fetch: fake.fetch }),
        request: { model: "m", messages: [] },
        streaming: true,
        signal: new AbortController().signal,
        emit: (event) => events.push(event),
        random: () => 0.5,
      });
      await vi.advanceTimersByTimeAsync(5_000);
      expect(fake.connections).toHaveLength(1); // three heartbeats (6 s) have not been missed yet
      await vi.advanceTimersByTimeAsync(10_000);
      expect(await running).toEqual({ kind: "done" });
      expect(fake.connections).toHaveLength(2);
      expect(events.find((e) => e.type === "reconnecting")).toMatchObject({ reason: expect.stringMatching(/for 6 s/) });
    } finally {
      vi.useRealTimers();
    }
  });
});
