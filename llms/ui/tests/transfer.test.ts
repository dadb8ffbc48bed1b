/** Export and import of chats (issue 15): JSON round trip, Markdown, clear errors on bad files. */
import { describe, expect, it } from "vitest";
import { ImportError, exportJson, exportMarkdown, fileNameOf, parseImport } from "../src/lib/transfer";
import type { Thread } from "../src/stores/db";

const NOW = Date.UTC(2026, 11, 2, 12, 0);

function thread(): Thread {
  return {
    id: "t1",
    title: "Sorting lists",
    titleEdited: false,
    systemPrompt: "Be brief.",
    model: "gpt-x",
    createdAt: NOW,
    updatedAt: NOW + 1000,
    messageCount: 2,
    preview: "Use sorted().",
    messages: [
      { id: "m1", role: "user", content: "How do I sort a list?", createdAt: NOW },
      { id: "m2", role: "assistant", content: "Use `sorted()`.", createdAt: NOW, state: "done", model: "gpt-x", reasoning: "Easy." },
    ],
  };
}

function ids(): () => string {
  let n = 0;
  return () => `new-${++n}`;
}

describe("export", () => {
  it("writes every chat in a JSON envelope that imports back, under new ids", () => {
    const text = exportJson([thread()], NOW);
    expect(JSON.parse(text)).toMatchObject({ format: "llms-chats", version: 1, exportedAt: "2026-12-02T12:00:00.000Z" });
    const [back] = parseImport(text, NOW, ids());
    expect(back!.id).toBe("new-1");
    expect(back!.title).toBe("Sorting lists");
    expect(back!.systemPrompt).toBe("Be brief.");
    expect(back!.messages.map((m) => m.content)).toEqual(["How do I sort a list?", "Use `sorted()`."]);
    expect(back!.messageCount).toBe(2);
    expect(back!.preview).toBe("Use `sorted()`.");
  });

  it("writes one chat as Markdown, turn by turn", () => {
    const md = exportMarkdown(thread());
    expect(md).toBe(
      [
        "# Sorting lists",
        "",
        "_gpt-x · 2026-12-02 12:00 UTC_",
        "",
        "## System",
        "",
        "Be brief.",
        "",
        "## You",
        "",
        "How do I sort a list?",
        "",
        "## Assistant (gpt-x)",
        "",
        "<details><summary>Reasoning</summary>",
        "",
        "Easy.",
        "",
        "</details>",
        "",
        "Use `sorted()`.",
        "",
      ].join("\n"),
    );
  });

  it("names files after the chat", () => {
    expect(fileNameOf("Sorting lists: a how-to!", "md")).toBe("sorting-lists-a-how-to.md");
    expect(fileNameOf("???", "json")).toBe("chat.json");
  });
});

describe("import", () => {
  it("takes a bare list or a single chat, titles it from its first question, stops running answers", () => {
    const raw = { messages: [{ role: "user", content: "Hello there\nsecond line" }, { role: "assistant", content: "Hi", state: "streaming", streamId: "s1" }] };
    const [one] = parseImport(JSON.stringify(raw), NOW, ids());
    expect(one!.title).toBe("Hello there");
    expect(one!.messages[1]!.state).toBe("stopped");
    expect(one!.messages[1]!.streamId).toBeUndefined();
    expect(one!.messages[0]!.createdAt).toBe(NOW);
    expect(parseImport(JSON.stringify([raw, raw]), NOW, ids())).toHaveLength(2);
  });

  it("refuses what is not an export, saying why", () => {
    expect(() => parseImport("not json", NOW, ids())).toThrow(ImportError);
    expect(() => parseImport("not json", NOW, ids())).toThrow("not JSON");
    expect(() => parseImport('{"a": 1}', NOW, ids())).toThrow("holds no chats");
    expect(() => parseImport('[{"title": "x"}]', NOW, ids())).toThrow("Chat 1 has no messages.");
    expect(() => parseImport('[{"messages": [{"role": "system", "content": "x"}]}]', NOW, ids())).toThrow(
      'Chat 1, message 1, has no role "user" or "assistant".',
    );
    expect(() => parseImport('[{"messages": [{"role": "user"}]}]', NOW, ids())).toThrow("has no text content");
  });
});
