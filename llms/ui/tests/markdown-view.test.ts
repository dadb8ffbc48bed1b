// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import { createApp, h, nextTick, reactive } from "vue";
import MarkdownView from "../src/components/MarkdownView.vue";
import { loadLanguage } from "../src/lib/highlight";
import { fencedCode } from "../src/lib/markdown";

function mount(props: { text: string; streaming: boolean }) {
  const state = reactive(props);
  const host = document.createElement("div");
  document.body.appendChild(host);
  const app = createApp({ render: () => h(MarkdownView, { text: state.text, streaming: state.streaming }) });
  app.mount(host);
  return { state, host, unmount: () => app.unmount() };
}

describe("fencedCode", () => {
  it("recognises a block that is exactly one fenced code block", () => {
    expect(fencedCode("```python\ndef f():\n    return 1\n```\n")).toEqual({ lang: "python", code: "def f():\n    return 1" });
    expect(fencedCode("~~~\nx\n~~~")).toEqual({ lang: "", code: "x" });
    expect(fencedCode("text\n```\nx\n```\n")).toBeNull();
    expect(fencedCode("```\nx\n```\nmore text\n")).toBeNull();
  });
});

describe("MarkdownView", () => {
  it("streams text, then a code block by appending, and ends highlighted", async () => {
    const answer = "Here is code:\n\n```python\n" + Array.from({ length: 300 }, (_, i) => `x_${i} = ${i}\n`).join("") + "```\n\nDone.";
    const { state, host, unmount } = mount({ text: "", streaming: true });
    let checked = 0;
    for (let i = 0; i < answer.length; i += 37) {
      state.text = answer.slice(0, i + 37);
      await nextTick();
      const code = host.querySelector(".md-tail code");
      if (code && state.text.length < answer.indexOf("```\n\nDone")) {
        // While the block is written it grows in place: its text is exactly the code so far.
        const body = state.text.slice(state.text.indexOf("```python\n") + 10);
        expect(code.textContent).toBe(body);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(50);
    state.streaming = false;
    await nextTick();
    await loadLanguage("python"); // loaded on first use: the block is rendered again once it is here
    await new Promise((r) => setTimeout(r, 0));
    expect(host.querySelectorAll(".code-block")).toHaveLength(1);
    expect(host.querySelector(".code-block code")!.textContent).toBe(
      Array.from({ length: 300 }, (_, i) => `x_${i} = ${i}`).join("\n"),
    );
    expect(host.querySelector(".code-block .hljs-number")).not.toBeNull();
    expect(host.querySelector("[data-testid=copy-code]")).not.toBeNull();
    expect(host.textContent).toContain("Here is code:");
    expect(host.textContent).toContain("Done.");
    unmount();
  });

  it("keeps all of a wall of text, in order", async () => {
    const words = Array.from({ length: 6000 }, (_, i) => `w${i}`);
    const text = words.join(" ");
    const { state, host, unmount } = mount({ text: "", streaming: true });
    for (let i = 0; i < text.length; i += 500) {
      state.text = text.slice(0, i + 500);
      await nextTick();
    }
    state.streaming = false;
    await nextTick();
    await new Promise((r) => setTimeout(r, 100)); // blocks left for the next frames
    expect(host.textContent!.split(/\s+/).filter(Boolean)).toEqual(words);
    unmount();
  });

  it("starts over when the text is replaced (regenerate)", async () => {
    const { state, host, unmount } = mount({ text: "first answer\n\nmore", streaming: false });
    await nextTick();
    state.text = "second";
    await nextTick();
    expect(host.textContent!.trim()).toBe("second");
    unmount();
  });
});
