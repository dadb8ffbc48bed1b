// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import { BlockSplitter } from "../src/lib/blocks";
import { loadLanguage } from "../src/lib/highlight";
import { renderMarkdown } from "../src/lib/markdown";

function dom(html: string): HTMLElement {
  const div = document.createElement("div");
  div.innerHTML = html;
  return div;
}

describe("markdown rendering", () => {
  it("renders markdown", () => {
    const el = dom(renderMarkdown("# Title\n\nSome **bold** and `code`.\n\n- a\n- b\n"));
    expect(el.querySelector("h1")?.textContent).toBe("Title");
    expect(el.querySelector("strong")?.textContent).toBe("bold");
    expect(el.querySelectorAll("li")).toHaveLength(2);
  });

  it("makes the model's HTML inert", () => {
    const el = dom(
      renderMarkdown('Look <img src=x onerror=alert(1)> here\n\n<script>alert(2)</script>\n\n[click](javascript:alert(3)) <a href="javascript:alert(4)">x</a>'),
    );
    expect(el.querySelector("img")).toBeNull();
    expect(el.querySelector("script")).toBeNull();
    expect(el.querySelector("[onerror]")).toBeNull();
    for (const a of el.querySelectorAll("a")) expect(a.getAttribute("href") ?? "").not.toMatch(/javascript:/i);
    expect(el.textContent).toContain("<img src=x onerror=alert(1)>"); // shown as text
  });

  it("opens links in a new tab without the opener", () => {
    const a = dom(renderMarkdown("[docs](https://example.com/docs)")).querySelector("a")!;
    expect(a.getAttribute("href")).toBe("https://example.com/docs");
    expect(a.getAttribute("target")).toBe("_blank");
    expect(a.getAttribute("rel")).toBe("noopener noreferrer");
  });

  it("highlights code blocks and gives each a copy button", async () => {
    await loadLanguage("python"); // languages are loaded on first use (see content.test.ts)
    const el = dom(renderMarkdown("```python\ndef f():\n    return 1\n```\n\n```\nplain\n```\n"));
    const blocks = el.querySelectorAll(".code-block");
    expect(blocks).toHaveLength(2);
    expect(el.querySelectorAll("[data-testid=copy-code]")).toHaveLength(2);
    expect(blocks[0]!.querySelector("code")!.className).toContain("language-python");
    expect(blocks[0]!.querySelector(".hljs-keyword")?.textContent).toBe("def");
    expect(blocks[0]!.querySelector("code")!.textContent).toBe("def f():\n    return 1");
    expect(blocks[1]!.querySelector("code")!.textContent).toBe("plain");
  });

  it("shows remote images as links (the CSP would block them)", () => {
    const el = dom(renderMarkdown("![a cat](https://example.com/cat.png)"));
    expect(el.querySelector("img")).toBeNull();
    expect(el.querySelector("a")?.textContent).toBe("a cat");
  });
});

const DOC = `# Heading

A paragraph
over two lines.

\`\`\`js
const a = 1;

const b = 2;
\`\`\`
Text right after a fence.

1. one
2. two

   continued item

> quote

| a | b |
|---|---|
| 1 | 2 |
`;

describe("BlockSplitter", () => {
  it("splits into settled blocks and a tail that add up to the text", () => {
    const splitter = new BlockSplitter();
    const { blocks, tail } = splitter.update(DOC);
    expect(blocks.join("") + tail).toBe(DOC);
    expect(blocks.some((b) => b.includes("const a = 1;\n\nconst b = 2;"))).toBe(true); // a fence is never split
    expect(blocks.some((b) => b.includes("2. two") && b.includes("continued item"))).toBe(true);
  });

  it("gives the same blocks fed token by token as all at once", () => {
    const whole = new BlockSplitter().update(DOC).blocks.slice();
    const splitter = new BlockSplitter();
    let result = splitter.update("");
    for (let i = 0; i < DOC.length; i += 3) {
      result = splitter.update(DOC.slice(0, i + 3));
      expect(result.reset).toBe(false);
      expect(result.blocks.join("") + result.tail).toBe(DOC.slice(0, i + 3));
    }
    expect(result.blocks).toEqual(whole);
  });

  it("renders the same HTML block by block as all at once", () => {
    const { blocks, tail } = new BlockSplitter().update(DOC);
    const pieces = [...blocks, tail].map((b) => renderMarkdown(b)).join("");
    const strip = (html: string) => html.replace(/\s+/g, "");
    expect(strip(pieces)).toBe(strip(renderMarkdown(DOC)).replace('<olstart="2">', ""));
  });

  it("cuts a wall of text into joined pieces, never inside a code fence", () => {
    const wall = Array.from({ length: 4000 }, (_, i) => `word${i}`).join(" ");
    const splitter = new BlockSplitter(2000);
    let result = splitter.update("");
    for (let i = 0; i < wall.length; i += 97) result = splitter.update(wall.slice(0, i + 97));
    expect(result.blocks.length).toBeGreaterThan(5);
    expect(result.blocks.join("") + result.tail).toBe(wall);
    expect(result.blocks.every((b) => b.length <= 2600)).toBe(true);
    expect(result.joined.every(Boolean)).toBe(true);
    for (const b of result.blocks) expect(b.endsWith(" ")).toBe(true); // cut between words

    const whole = new BlockSplitter(2000).update(wall);
    expect(whole.blocks.join("") + whole.tail).toBe(wall);
    expect(whole.tail.length).toBeLessThanOrEqual(2000);

    const code = "```\n" + "x = 1\n".repeat(2000);
    const fenced = new BlockSplitter(2000).update(code);
    expect(fenced.blocks).toEqual([]);
    expect(fenced.tail).toBe(code);
  });

  it("starts over when the text is replaced", () => {
    const splitter = new BlockSplitter();
    splitter.update("one\n\ntwo\n\n");
    const result = splitter.update("other");
    expect(result.reset).toBe(true);
    expect(result.blocks).toEqual([]);
    expect(result.tail).toBe("other");
  });
});
