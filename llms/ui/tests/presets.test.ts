import { describe, expect, it } from "vitest";
import { progressOf } from "../src/lib/progress";
import {
  BUILTINS,
  PRESETS_KEY,
  PresetStore,
  applySystemPrompt,
  loadPresets,
  presetName,
  presetText,
  problemOf,
  type PromptTarget,
} from "../src/lib/presets";
import { en } from "../src/i18n/en";
import { newAnswer, type ChatMessage } from "../src/stores/message";

class MemoryStorage {
  data = new Map<string, string>();
  getItem(key: string): string | null {
    return this.data.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.data.set(key, value);
  }
}

function storeOn(storage: MemoryStorage): PresetStore {
  let n = 0;
  return new PresetStore(storage as unknown as Storage, () => `p${++n}`);
}

describe("presets", () => {
  it("start with the built-ins, a few system prompts and a starter", () => {
    const presets = loadPresets(new MemoryStorage());
    expect(presets.map((p) => p.id)).toEqual(BUILTINS.map((b) => b.id));
    expect(presets.filter((p) => p.kind === "system").length).toBeGreaterThanOrEqual(2);
    expect(presets.some((p) => p.kind === "starter")).toBe(true);
  });

  it("are created, edited and deleted, and come back after a reload", () => {
    const storage = new MemoryStorage();
    const store = storeOn(storage);
    const pirate = store.add("  Pirate ", "Talk like a pirate.", "system");
    expect(pirate).toEqual({ id: "p1", name: "Pirate", text: "Talk like a pirate.", kind: "system" });
    expect(store.update("p1", { name: "Captain", text: "Arr." })).toBe(true);
    store.remove("builtin-concise");
    const again = loadPresets(storage);
    expect(again.find((p) => p.id === "p1")).toEqual({ id: "p1", name: "Captain", text: "Arr.", kind: "system" });
    expect(again.some((p) => p.id === "builtin-concise")).toBe(false);

    // Everything deleted stays deleted; the built-ins come back only when asked.
    for (const p of [...store.state.presets]) store.remove(p.id);
    expect(loadPresets(storage)).toEqual([]);
    store.restoreBuiltins();
    expect(loadPresets(storage).map((p) => p.id)).toEqual(BUILTINS.map((b) => b.id));
  });

  it("refuse what cannot be saved, and read no malformed entry", () => {
    expect(problemOf(" ", "x")).toBe("nameMissing");
    expect(problemOf("n".repeat(61), "x")).toBe("nameLong");
    expect(problemOf("n", "  ")).toBe("textMissing");
    const store = storeOn(new MemoryStorage());
    expect(store.add("", "text", "system")).toBeNull();
    expect(store.update("builtin-concise", { text: "" })).toBe(false);
    expect(store.update("missing", { text: "x" })).toBe(false);

    const storage = new MemoryStorage();
    const good = { id: "a", name: "A", text: "t", kind: "starter" };
    storage.setItem(PRESETS_KEY, JSON.stringify({ v: 1, presets: [good, { id: "b", name: "B" }, { ...good, kind: "x" }, good, 7] }));
    expect(loadPresets(storage)).toEqual([good]);
    storage.setItem(PRESETS_KEY, "{nope");
    expect(loadPresets(storage)).toHaveLength(BUILTINS.length);
  });

  it("apply a system prompt to the open chat, else to the chat about to start", async () => {
    const saved: [string, string][] = [];
    const target: PromptTarget = {
      threads: { state: { current: null }, setSystemPrompt: async (id, text) => void saved.push([id, text]) },
      chat: { state: { draftSystemPrompt: "" } },
    };
    applySystemPrompt(target, "Be brief.");
    expect(target.chat.state.draftSystemPrompt).toBe("Be brief.");
    target.threads.state.current = { id: "t1", systemPrompt: "" };
    applySystemPrompt(target, "Be kind.");
    expect(target.threads.state.current.systemPrompt).toBe("Be kind.");
    expect(saved).toEqual([["t1", "Be kind."]]);
  });
});

describe("presetName", () => {
  it("shows a built-in in the UI's language until the user renames it", () => {
    const translate = (key: string): string => `<${key}>`;
    const concise = { ...BUILTINS[0]! };
    expect(presetName(concise, translate)).toBe("<presets.builtinConcise>");
    expect(presetName({ ...concise, name: "Short" }, translate)).toBe("Short");
    expect(presetName({ id: "p1", name: "Mine", text: "t", kind: "system" }, translate)).toBe("Mine");
  });
});

describe("presetText", () => {
  it("gives a built-in starter in the UI's language until the user edits it; system prompts as they are", () => {
    const starter = BUILTINS.find((b) => b.kind === "starter")!;
    expect(presetText(starter, (key) => `<${key}>`)).toBe("<presets.builtinSummariseText>\n\n");
    expect(presetText(starter, (key) => en.presets[key.split(".")[1] as keyof typeof en.presets])).toBe(starter.text);
    expect(presetText({ ...starter, text: "Mine:" }, (key) => `<${key}>`)).toBe("Mine:");
    const concise = BUILTINS[0]!;
    expect(presetText(concise, (key) => `<${key}>`)).toBe(concise.text);
  });
});

describe("progressOf", () => {
  function answer(extra: Partial<ChatMessage>): ChatMessage {
    return { ...newAnswer("a", "m", 0), ...extra };
  }

  it("is nothing without a max_tokens", () => {
    expect(progressOf(answer({ content: "abc" }))).toBeNull();
  });

  it("estimates from characters until the gateway counts, and says so", () => {
    expect(progressOf(answer({ maxTokens: 100, content: "x".repeat(40), reasoning: "y".repeat(2) }))).toEqual({
      tokens: 11,
      max: 100,
      ratio: 0.11,
      estimate: true,
    });
    const counted = progressOf(answer({ maxTokens: 100, content: "x".repeat(40), usage: { prompt_tokens: 3, completion_tokens: 25, total_tokens: 28 } }));
    expect(counted).toEqual({ tokens: 25, max: 100, ratio: 0.25, estimate: false });
    // Never past the end, however the estimate runs.
    expect(progressOf(answer({ maxTokens: 10, content: "x".repeat(400) }))!.ratio).toBe(1);
  });

  it("counts only a Continue's own output", () => {
    const p = progressOf(answer({ maxTokens: 50, content: "x".repeat(120), outputBase: 80 }));
    expect(p).toMatchObject({ tokens: 10, estimate: true });
  });
});
