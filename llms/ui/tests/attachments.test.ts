/**
 * Attachments (issue 15): what a question with images and text files becomes on the wire, what
 * is refused and why, a model known not to take images, and attachments kept through versions
 * and export/import. Long questions are collapsed.
 */
import { describe, expect, it } from "vitest";
import { computed, reactive } from "vue";
import type { RunOptions, RunOutcome } from "../src/api/chat";
import { Gateway } from "../src/api/client";
import type { ModelCard } from "../src/api/types";
import {
  dataUrlBytes,
  fenceFor,
  fitWithin,
  imagesRefused,
  inlinedText,
  isLongQuestion,
  refusal,
  sizeText,
  takesImages,
  textBlock,
  validAttachments,
  wireContent,
  type Attachment,
} from "../src/lib/attachments";
import type { FrameScheduler } from "../src/lib/frame";
import { exportJson, exportMarkdown, parseImport } from "../src/lib/transfer";
import { AuthStore } from "../src/stores/auth";
import { ChatController, wireMessages } from "../src/stores/chat";
import { ThreadDB } from "../src/stores/db";
import { MemoryLocks } from "../src/stores/locks";
import { DEFAULTS } from "../src/stores/settings";
import { ThreadStore } from "../src/stores/threads";
import { chunk } from "./fake-gateway";

const IMAGE: Attachment = { kind: "image", name: "cat.png", type: "image/png", size: 4, dataUrl: "data:image/png;base64,AAAA", width: 2, height: 1 };
const NOTES: Attachment = { kind: "text", name: "notes.md", size: 8, text: "# Notes\n" };

describe("wire content", () => {
  it("inlines text files as fenced blocks under their names, after the question", () => {
    expect(inlinedText("Read this", [NOTES])).toBe("Read this\n\nnotes.md:\n```markdown\n# Notes\n```");
    expect(textBlock({ kind: "text", name: "a.py", size: 5, text: "x = 1" })).toBe("a.py:\n```python\nx = 1\n```");
    expect(textBlock({ kind: "text", name: "log.txt", size: 2, text: "ok" })).toBe("log.txt:\n```\nok\n```");
  });

  it("uses a fence longer than any backticks in the file", () => {
    expect(fenceFor("no ticks")).toBe("```");
    expect(fenceFor("a ```` b")).toBe("`````");
    expect(textBlock({ kind: "text", name: "README", size: 9, text: "```\nx\n```" })).toBe("README:\n````\n```\nx\n```\n````");
    expect(textBlock({ kind: "text", name: "Dockerfile", size: 6, text: "FROM x" })).toBe("Dockerfile:\n```dockerfile\nFROM x\n```");
  });

  it("sends a string without images, text and image_url parts with them", () => {
    expect(wireContent("Hi", [NOTES])).toBe("Hi\n\nnotes.md:\n```markdown\n# Notes\n```");
    expect(wireContent("What is it?", [IMAGE])).toEqual([
      { type: "text", text: "What is it?" },
      { type: "image_url", image_url: { url: "data:image/png;base64,AAAA" } },
    ]);
    // Only an image: no empty text part.
    expect(wireContent("", [IMAGE])).toEqual([{ type: "image_url", image_url: { url: IMAGE.dataUrl } }]);
  });

  it("builds the conversation with each question's attachments", () => {
    const thread = {
      id: "t", title: "", titleEdited: false, systemPrompt: "", model: "m", createdAt: 0, updatedAt: 0, messageCount: 2, preview: "",
      messages: [
        { id: "1", role: "user" as const, content: "Look", createdAt: 0, attachments: [IMAGE] },
        { id: "2", role: "assistant" as const, content: "A cat.", createdAt: 0 },
      ],
    };
    expect(wireMessages(thread)).toEqual([
      { role: "user", content: [{ type: "text", text: "Look" }, { type: "image_url", image_url: { url: IMAGE.dataUrl } }] },
      { role: "assistant", content: "A cat." },
    ]);
  });
});

describe("limits", () => {
  it("draws a large image at most 2048 px a side, keeping its shape", () => {
    expect(fitWithin(4000, 3000)).toEqual({ width: 2048, height: 1536 });
    expect(fitWithin(1000, 5000)).toEqual({ width: 410, height: 2048 });
    expect(fitWithin(800, 600)).toEqual({ width: 800, height: 600 });
  });

  it("refuses other files and files over the limits in words", () => {
    expect(refusal({ name: "a.pdf", type: "application/pdf", size: 10 })).toBe(
      "a.pdf cannot be attached: only images and text files (such as .txt, .md, .json, .csv or code) can.",
    );
    expect(refusal({ name: "big.jpg", type: "image/jpeg", size: 25 * 1024 * 1024 })).toBe(
      "big.jpg is 25 MB: images up to 20 MB can be attached.",
    );
    expect(refusal({ name: "x.json", type: "", size: 300 * 1024 })).toBe("x.json is 300 KB: text files up to 256 KB can be attached.");
    expect(refusal({ name: "main.rs", type: "", size: 10 })).toBeNull();
    expect(refusal({ name: "data.csv", type: "text/csv", size: 10 })).toBeNull();
    expect(sizeText(812)).toBe("812 B");
    expect(sizeText(14540)).toBe("14.2 KB");
    expect(dataUrlBytes("data:image/png;base64,AAAA")).toBe(3);
  });
});

describe("models that take images", () => {
  const card = (extra: Partial<ModelCard>): ModelCard => ({ id: "m", object: "model", owned_by: "p", ...extra });
  it("knows only what /v1/models says", () => {
    expect(takesImages(card({}))).toBeNull();
    expect(takesImages(undefined)).toBeNull();
    expect(takesImages(card({ type: "embedding" }))).toBe(false);
    expect(takesImages(card({ input_modalities: ["text"] }))).toBe(false);
    expect(takesImages(card({ architecture: { input_modalities: ["text", "image"] } }))).toBe(true);
    expect(takesImages(card({ capabilities: ["completion", "vision"] }))).toBe(true);
  });

  it("does not send an image to a model known not to take it, and says so", async () => {
    const threads = new ThreadStore({ db: new ThreadDB(`attach-${Math.random()}`), channel: null });
    await threads.load();
    const seen: RunOptions[] = [];
    const run = async (options: RunOptions): Promise<RunOutcome> => {
      seen.push(options);
      options.emit({ type: "chunk", chunk: chunk("ok"), seq: 1 });
      return { kind: "done" };
    };
    const state = reactive({ models: [{ id: "m", object: "model", owned_by: "p", type: "embedding" }] as ModelCard[] });
    const chat = new ChatController({
      gateway: new Gateway({ fetch: async () => new Response("", { status: 404 }) }),
      threads,
      settings: reactive({ ...DEFAULTS }),
      auth: new AuthStore(null),
      models: { selected: computed(() => "m"), state },
      run,
      schedule: (callback: () => void): FrameScheduler => ({ request: callback, cancel() {}, flush() {} }),
      locks: new MemoryLocks(),
    });
    expect(await chat.send("Look", [IMAGE])).toBe(false);
    expect(chat.state.banner?.message).toBe(imagesRefused("m"));
    expect(seen).toHaveLength(0);

    // A text file is fine; editing the question keeps its attachments in the new version.
    delete state.models[0]!.type;
    expect(await chat.send("Read", [NOTES])).toBe(true);
    await chat.settled();
    const thread = threads.state.current!;
    await chat.edit(thread.messages[0]!.id, "Read it again");
    await chat.settled();
    expect(seen.at(-1)!.request.messages).toEqual([{ role: "user", content: "Read it again\n\nnotes.md:\n```markdown\n# Notes\n```" }]);
    expect(thread.messages[0]!.attachments).toEqual([NOTES]);
    expect(thread.messages[0]!.versions?.[0]?.[0]?.attachments).toEqual([NOTES]);
  });
});

describe("export and import", () => {
  const thread = {
    id: "t", title: "Cat", titleEdited: false, systemPrompt: "", model: "m", createdAt: 0, updatedAt: 0, messageCount: 1, preview: "",
    messages: [{ id: "1", role: "user" as const, content: "Look", createdAt: 0, attachments: [IMAGE, NOTES] }],
  };
  it("keeps attachments through JSON, drops malformed ones", () => {
    const [back] = parseImport(exportJson([thread]), 1, () => "new");
    expect(back!.messages[0]!.attachments).toEqual([IMAGE, NOTES]);
    expect(validAttachments([{ kind: "image", name: "x", size: 1, dataUrl: "javascript:alert(1)" }, NOTES])).toEqual([NOTES]);
    expect(validAttachments("nope")).toBeUndefined();
  });

  it("writes text files inline and names images in Markdown", () => {
    const text = exportMarkdown(thread);
    expect(text).toContain("## You\n\nLook\n\nnotes.md:\n```markdown\n# Notes\n```\n_[image: cat.png, 2×1]_\n");
  });
});

describe("long questions", () => {
  it("collapse past 12 lines or 1,000 characters", () => {
    expect(isLongQuestion("a\n".repeat(11) + "a")).toBe(false);
    expect(isLongQuestion("a\n".repeat(12) + "a")).toBe(true);
    expect(isLongQuestion("x".repeat(1000))).toBe(false);
    expect(isLongQuestion("x".repeat(1001))).toBe(true);
  });
});
