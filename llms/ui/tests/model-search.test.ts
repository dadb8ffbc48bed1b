/** The searchable model picker's logic (issue 15). */
import { describe, expect, it } from "vitest";
import type { ModelCard } from "../src/api/types";
import { moveActive, searchModels } from "../src/lib/model-search";

const card = (id: string, owned_by: string): ModelCard => ({ id, object: "model", owned_by });
const MODELS = [card("gpt-4o-mini", "openai"), card("claude-sonnet", "anthropic"), card("gpt-4o", "openai"), card("llama-gpt", "local")];

describe("searchModels", () => {
  it("lists every model by provider then id when nothing is typed", () => {
    expect(searchModels(MODELS, " ").map((m) => m.id)).toEqual(["claude-sonnet", "llama-gpt", "gpt-4o", "gpt-4o-mini"]);
  });

  it("keeps models having every word, ids starting with the first word first", () => {
    expect(searchModels(MODELS, "GPT").map((m) => m.id)).toEqual(["gpt-4o", "gpt-4o-mini", "llama-gpt"]);
    expect(searchModels(MODELS, "4o mini").map((m) => m.id)).toEqual(["gpt-4o-mini"]);
    expect(searchModels(MODELS, "anthropic").map((m) => m.id)).toEqual(["claude-sonnet"]);
    expect(searchModels(MODELS, "nothing-like-it")).toEqual([]);
  });

  it("searches hundreds of models (800, from 7 providers)", () => {
    const many = Array.from({ length: 800 }, (_, i) => card(`model-${i}`, `p${i % 7}`));
    expect(searchModels(many, "model-79")).toHaveLength(11);
  });
});

describe("moveActive", () => {
  it("moves and wraps through the options", () => {
    expect(moveActive(-1, "ArrowDown", 3)).toBe(0);
    expect(moveActive(2, "ArrowDown", 3)).toBe(0);
    expect(moveActive(0, "ArrowUp", 3)).toBe(2);
    expect(moveActive(1, "End", 3)).toBe(2);
    expect(moveActive(2, "Home", 3)).toBe(0);
    expect(moveActive(0, "PageDown", 30)).toBe(10);
    expect(moveActive(5, "PageUp", 30)).toBe(0);
    expect(moveActive(1, "x", 3)).toBe(1);
    expect(moveActive(0, "ArrowDown", 0)).toBe(-1);
  });
});
