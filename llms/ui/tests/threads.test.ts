import { describe, expect, it } from "vitest";
import { ThreadDB } from "../src/stores/db";
import { newAnswer } from "../src/stores/message";
import { ThreadStore, UNTITLED, titleFrom, type ChannelLike } from "../src/stores/threads";

let dbCount = 0;
function freshDb(): ThreadDB {
  dbCount += 1;
  return new ThreadDB(`test-${dbCount}-${Math.random()}`);
}

function clock(start = 1_000): () => number {
  let t = start;
  return () => (t += 1000);
}

/** Two ends of one BroadcastChannel, delivering asynchronously like the real one. */
function channelPair(): [ChannelLike, ChannelLike] {
  const make = (): ChannelLike & { peer?: ChannelLike } => ({
    onmessage: null,
    postMessage(message: unknown) {
      const peer = (this as { peer?: ChannelLike }).peer;
      const data = structuredClone(message);
      setTimeout(() => peer?.onmessage?.({ data } as MessageEvent), 0);
    },
    close() {},
  });
  const a = make();
  const b = make();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

describe("ThreadStore on IndexedDB", () => {
  it("creates, lists newest first, reopens with messages, renames, deletes", async () => {
    const db = freshDb();
    const store = new ThreadStore({ db, channel: null, now: clock() });
    await store.load();
    expect(store.state.threads).toEqual([]);

    const first = await store.create({ systemPrompt: "Be brief." });
    first.messages.push({ id: "u1", role: "user", content: "How do tides work?\nDetails please", createdAt: 1 });
    await store.save(first);
    const second = await store.create();
    second.messages.push({ id: "u2", role: "user", content: "Hello", createdAt: 2 });
    await store.save(second);

    expect(store.state.threads.map((t) => t.title)).toEqual(["Hello", "How do tides work?"]);

    // A fresh store (a reload) sees the same, in the same order.
    const again = new ThreadStore({ db, channel: null, now: clock(10_000) });
    await again.load();
    expect(again.state.threads.map((t) => t.id)).toEqual([second.id, first.id]);
    const opened = await again.open(first.id);
    expect(opened?.systemPrompt).toBe("Be brief.");
    expect(opened?.messages.map((m) => m.content)).toEqual(["How do tides work?\nDetails please"]);

    await again.rename(first.id, "  Tides  ");
    expect(again.state.threads[0]!.title).toBe("Tides");
    const reloaded = await db.get(first.id);
    expect(reloaded?.title).toBe("Tides");
    expect(reloaded?.titleEdited).toBe(true);
    // A renamed thread keeps its name when more messages come.
    again.state.current!.messages.unshift({ id: "u0", role: "user", content: "A different first line", createdAt: 0 });
    await again.save(again.state.current!);
    expect((await db.get(first.id))?.title).toBe("Tides");

    const removed = await again.remove(first.id);
    expect(removed?.id).toBe(first.id);
    expect(again.state.current).toBeNull();
    expect(again.state.threads.map((t) => t.id)).toEqual([second.id]);
    expect(await db.get(first.id)).toBeNull();
    expect((await db.list()).map((t) => t.id)).toEqual([second.id]);

    await again.restore(removed!);
    expect(again.state.threads.map((t) => t.id).sort()).toEqual([first.id, second.id].sort());
    expect((await db.get(first.id))?.messages).toHaveLength(2);
  });

  it("searches titles and message text, case-insensitively", async () => {
    const store = new ThreadStore({ db: freshDb(), channel: null, now: clock() });
    await store.load();
    const a = await store.create();
    a.messages.push({ id: "1", role: "user", content: "Plan a trip to Lisbon", createdAt: 1 });
    a.messages.push({ ...newAnswer("2", "m", 1), content: "Visit the Alfama district.", state: "done" });
    await store.save(a);
    const b = await store.create();
    b.messages.push({ id: "3", role: "user", content: "Sort a list in Rust", createdAt: 2 });
    await store.save(b);

    await store.search("lisbon");
    expect(store.visible.value.map((t) => t.id)).toEqual([a.id]);
    await store.search("ALFAMA");
    expect(store.visible.value.map((t) => t.id)).toEqual([a.id]);
    await store.search("nothing like this");
    expect(store.visible.value).toEqual([]);
    await store.search("");
    expect(store.visible.value.map((t) => t.id)).toEqual([b.id, a.id]);
  });

  it("keeps an answer that was streaming when the page closed for the controller to follow again", async () => {
    const db = freshDb();
    const store = new ThreadStore({ db, channel: null, now: clock() });
    const thread = await store.create();
    thread.messages.push({ id: "u", role: "user", content: "hi", createdAt: 1 });
    thread.messages.push({ ...newAnswer("a", "m", 1), content: "partial", state: "streaming" });
    await store.save(thread);
    const later = new ThreadStore({ db, channel: null });
    const opened = await later.open(thread.id);
    // Not marked failed on open: ChatController.adopt resumes it, or marks it (chat-behaviour.test.ts).
    expect(opened?.messages[1]).toMatchObject({ state: "streaming", content: "partial" });
  });

  it("does not bring back a thread deleted while its answer was still streaming", async () => {
    const db = freshDb();
    const store = new ThreadStore({ db, channel: null, now: clock() });
    const thread = await store.create();
    await store.remove(thread.id);
    await store.save(thread);
    expect(await db.get(thread.id)).toBeNull();
    expect(store.state.threads).toEqual([]);
  });

  it("keeps two tabs in sync: list, open thread, live answer, deletion", async () => {
    const db = freshDb();
    const [ca, cb] = channelPair();
    const tabA = new ThreadStore({ db, channel: ca, now: clock() });
    const tabB = new ThreadStore({ db, channel: cb, now: clock() });
    await Promise.all([tabA.load(), tabB.load()]);

    const thread = await tabA.create();
    await expect.poll(() => tabB.state.threads.map((t) => t.id)).toEqual([thread.id]);
    await tabB.open(thread.id);

    thread.messages.push({ id: "u", role: "user", content: "Tell me a story", createdAt: 1 });
    const answer = { ...newAnswer("a", "m", 1), content: "Once", state: "streaming" as const };
    thread.messages.push(answer);
    tabA.hold(thread, "a");
    await tabA.save(thread);
    await expect.poll(() => tabB.state.current?.messages.length).toBe(2);
    expect(tabB.state.threads[0]!.title).toBe("Tell me a story");

    // The answer streams in tab A; tab B mirrors it without waiting for a save.
    answer.content = "Once upon a time";
    tabA.broadcastMessage(thread.id, answer, { force: true });
    await expect.poll(() => tabB.state.current?.messages[1]?.content).toBe("Once upon a time");
    expect(tabB.state.current?.messages[1]?.state).toBe("streaming");

    // Tab A's own running answer is not overwritten by what tab B saves.
    tabB.state.current!.systemPrompt = "Be nice";
    await tabB.save(tabB.state.current!);
    await new Promise((r) => setTimeout(r, 20));
    expect(tabA.state.current?.messages[1]).toBe(thread.messages[1]);

    await tabA.remove(thread.id);
    await expect.poll(() => tabB.state.threads.length).toBe(0);
    expect(tabB.state.current).toBeNull();
  });
});

describe("titles", () => {
  it("take the first line of the first message, at most 60 characters", () => {
    expect(titleFrom("  Hello there  \nsecond line")).toBe("Hello there");
    expect(titleFrom("")).toBe(UNTITLED);
    const long = titleFrom("x".repeat(100));
    expect(long.length).toBeLessThanOrEqual(60);
    expect(long.endsWith("…")).toBe(true);
  });
});

describe("pinned threads (issue 15)", () => {
  it("keeps the pin in the stored metadata, and unpins", async () => {
    const db = new ThreadDB(`pins-${Math.random()}`);
    const store = new ThreadStore({ db, channel: null });
    const thread = await store.create();
    thread.messages.push({ id: "m", role: "user", content: "Keep me on top", createdAt: 1 });
    await store.save(thread);
    await store.setPinned(thread.id, true);
    const again = new ThreadStore({ db, channel: null });
    await again.load();
    expect(again.state.threads.find((t) => t.id === thread.id)?.pinned).toBe(true);
    await again.setPinned(thread.id, false);
    expect((await db.get(thread.id))?.pinned).toBeUndefined();
  });
});
