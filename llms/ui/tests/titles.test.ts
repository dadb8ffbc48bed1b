import { describe, expect, it } from "vitest";
import { Gateway } from "../src/api/client";
import { parseImport } from "../src/lib/transfer";
import {
  ANSWER_CHARS,
  PURPOSE_HEADER,
  TITLE_MAX_LENGTH,
  TITLE_MAX_TOKENS,
  autoTitle,
  cleanTitle,
  titleRequest,
  wantsTitle,
} from "../src/lib/titles";
import { ThreadDB, type Thread } from "../src/stores/db";
import { newAnswer, type ChatMessage } from "../src/stores/message";
import { ThreadStore } from "../src/stores/threads";

describe("cleanTitle", () => {
  it.each([
    ['"Tides and the Moon"', "Tides and the Moon"],
    ["Title: Tides and the Moon.", "Tides and the Moon"],
    ["**Title:** “Merging sorted lists”", "Merging sorted lists"],
    ["\n\n  'Sorting in Python'!\nHere is why I chose it…", "Sorting in Python"],
    ["<think>The user asks about tides.</think>\nOcean Tides Explained", "Ocean Tides Explained"],
    ["# Gezeiten erklärt:", "Gezeiten erklärt"],
    ["Titel: Gezeiten", "Gezeiten"],
    ["`CAP theorem`?", "CAP theorem"],
  ])("%j → %j", (raw, clean) => {
    expect(cleanTitle(raw)).toBe(clean);
  });

  it("gives nothing for nothing usable", () => {
    for (const raw of ["", "   \n ", '""', "<think>still thinking about it", null, undefined, "..."]) {
      expect(cleanTitle(raw)).toBeNull();
    }
  });

  it("caps the length at a word, with an ellipsis", () => {
    const long = "A very long title that goes on and on about every detail of the question asked";
    const title = cleanTitle(long)!;
    expect(title.length).toBeLessThanOrEqual(TITLE_MAX_LENGTH);
    expect(title.endsWith("…")).toBe(true);
    expect(long.startsWith(title.slice(0, -1))).toBe(true);
    expect(title.slice(0, -1).endsWith(" ")).toBe(false);
  });
});

describe("titleRequest", () => {
  it("is one small non-streaming user turn with the question and the start of the answer", () => {
    const answer = "x".repeat(ANSWER_CHARS + 200);
    const request = titleRequest("m-1", "How do tides work?", answer);
    expect(request.model).toBe("m-1");
    expect(request.stream).toBe(false);
    expect(request.max_tokens).toBe(TITLE_MAX_TOKENS);
    expect(request).not.toHaveProperty("temperature");
    expect(request.messages).toHaveLength(1);
    const content = request.messages[0]!.content;
    expect(request.messages[0]!.role).toBe("user");
    expect(content).toContain("Question:\nHow do tides work?");
    expect(content).toContain(`Start of the answer:\n${"x".repeat(ANSWER_CHARS)}…`);
    expect(content).not.toContain("x".repeat(ANSWER_CHARS + 1));
  });
});

let dbCount = 0;
function store(): ThreadStore {
  dbCount += 1;
  return new ThreadStore({ db: new ThreadDB(`titles-${dbCount}-${Math.random()}`), channel: null });
}

function done(id: string, content: string): ChatMessage {
  return { ...newAnswer(id, "m-1", 1), state: "done", content };
}

async function chatWithAnswer(threads: ThreadStore): Promise<[Thread, ChatMessage]> {
  const thread = await threads.create({ model: "m-1" });
  thread.messages.push({ id: "q", role: "user", content: "How do tides work? Tell me everything", createdAt: 1 });
  thread.messages.push(done("a", "The Moon pulls the oceans."));
  await threads.save(thread);
  return [thread, thread.messages[1]!];
}

/** A gateway whose chat endpoint answers `reply` (or fails with `status`), recording each request. */
function titleGateway(reply: string, status = 200): { gateway: Gateway; calls: { headers: Record<string, string>; body: unknown }[] } {
  const calls: { headers: Record<string, string>; body: unknown }[] = [];
  const gateway = new Gateway({
    apiKey: () => "sk-t",
    fetch: async (_url, init) => {
      calls.push({ headers: init?.headers as Record<string, string>, body: JSON.parse(String(init?.body)) });
      if (status !== 200) return new Response(JSON.stringify({ error: { message: "no" } }), { status });
      const completion = { id: "c", object: "chat.completion", model: "m-1", choices: [{ index: 0, message: { role: "assistant", content: reply }, finish_reason: "stop" }] };
      return new Response(JSON.stringify(completion), { headers: { "Content-Type": "application/json" } });
    },
  });
  return { gateway, calls };
}

describe("autoTitle", () => {
  it("names a new chat after its first answer, once, with the chat's model, and keeps the name", async () => {
    const threads = store();
    const [thread, answer] = await chatWithAnswer(threads);
    expect(wantsTitle(thread, answer)).toBe(true);
    const { gateway, calls } = titleGateway('Title: "Why the Tides Rise."');
    await autoTitle({ gateway, threads, enabled: () => true }, thread, answer);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.headers[PURPOSE_HEADER]).toBe("title");
    expect(calls[0]!.headers.Authorization).toBe("Bearer sk-t");
    expect(calls[0]!.body).toMatchObject({ model: "m-1", stream: false, max_tokens: TITLE_MAX_TOKENS });
    expect(thread.title).toBe("Why the Tides Rise");
    expect(thread.autoTitle).toBe("done");
    expect(threads.state.threads[0]!.title).toBe("Why the Tides Rise");

    // A later save (another answer) keeps the model's title; no second title is asked.
    await threads.save(thread);
    expect(thread.title).toBe("Why the Tides Rise");
    await autoTitle({ gateway, threads, enabled: () => true }, thread, answer);
    expect(calls).toHaveLength(1);
  });

  it("does not overwrite a rename made while the title was asked", async () => {
    const threads = store();
    const [thread, answer] = await chatWithAnswer(threads);
    let renamed: Promise<void> = Promise.resolve();
    const gateway = new Gateway({
      fetch: async () => {
        renamed = threads.rename(thread.id, "My tides");
        await renamed;
        const body = { choices: [{ index: 0, message: { role: "assistant", content: "Tides" }, finish_reason: "stop" }] };
        return new Response(JSON.stringify(body));
      },
    });
    await autoTitle({ gateway, threads, enabled: () => true }, thread, answer);
    expect(thread.title).toBe("My tides");
    expect(thread.titleEdited).toBe(true);
  });

  it("fails silently: the first words stay, and it is not asked again", async () => {
    const threads = store();
    const [thread, answer] = await chatWithAnswer(threads);
    const { gateway, calls } = titleGateway("", 500);
    await autoTitle({ gateway, threads, enabled: () => true }, thread, answer);
    expect(calls).toHaveLength(1);
    expect(thread.title).toBe("How do tides work? Tell me everything");
    expect(thread.autoTitle).toBe("asked");
    expect(wantsTitle(thread, answer)).toBe(false);
  });

  it("asks nothing when turned off, after a later answer, or for an unfinished answer", async () => {
    const threads = store();
    const [thread, answer] = await chatWithAnswer(threads);
    const { gateway, calls } = titleGateway("Tides");
    await autoTitle({ gateway, threads, enabled: () => false }, thread, answer);
    expect(calls).toHaveLength(0);

    expect(wantsTitle(thread, { ...answer, state: "stopped" })).toBe(false);
    expect(wantsTitle(thread, { ...answer, content: "  " })).toBe(false);
    thread.messages.push({ id: "q2", role: "user", content: "And?", createdAt: 2 }, done("a2", "More."));
    expect(wantsTitle(thread, thread.messages[3]!)).toBe(false);
  });

  it("never titles an imported chat, and keeps a model's title from the file", () => {
    const file = JSON.stringify([
      { title: "How", messages: [{ role: "user", content: "How?" }, { role: "assistant", content: "So.", state: "done" }] },
      { title: "Named by a model", autoTitle: "done", messages: [{ role: "user", content: "Q" }] },
    ]);
    let n = 0;
    const [plain, named] = parseImport(file, 5, () => `id-${++n}`);
    expect(plain!.autoTitle).toBe("asked");
    expect(wantsTitle(plain!, plain!.messages[1]!)).toBe(false);
    expect(named!.autoTitle).toBe("done");
    expect(named!.title).toBe("Named by a model");
  });
});
