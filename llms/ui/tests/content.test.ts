// @vitest-environment jsdom
// What answers render: math, task lists, aligned tables, <br> in cells, sub/superscript, and
// code highlighted with languages loaded on first use.
import { beforeAll, describe, expect, it } from "vitest";
import { GrowingCode } from "../src/lib/growing-code";
import { loadLanguage } from "../src/lib/highlight";
import { takeWaits } from "../src/lib/lazy";
import { renderMarkdown, sanitize } from "../src/lib/markdown";
import { loadMath, openMath } from "../src/lib/math";

function dom(html: string): HTMLElement {
  const div = document.createElement("div");
  div.innerHTML = html;
  return div;
}

describe("math", () => {
  beforeAll(async () => {
    await loadMath();
  });

  it("typesets $…$, $$…$$, \\(…\\) and \\[…\\]", () => {
    const el = dom(renderMarkdown("Energy $E=mc^2$ and \\(a^2+b^2=c^2\\).\n\n$$\n\\int_0^1 x\\,dx\n$$\n\n\\[\\frac{1}{2}\\]\n"));
    const inline = el.querySelectorAll(".katex:not(.katex-display .katex)");
    expect(inline).toHaveLength(2);
    expect(el.querySelectorAll(".katex-display")).toHaveLength(2);
    // KaTeX keeps the TeX for screen readers and copy: the annotations are the sources.
    const sources = [...el.querySelectorAll("annotation")].map((a) => a.textContent);
    expect(sources).toEqual(["E=mc^2", "a^2+b^2=c^2", "\\int_0^1 x\\,dx", "\\frac{1}{2}"]);
    expect(el.textContent).not.toContain("$");
    expect(el.textContent).not.toContain("(a^2"); // the \( form is not eaten by escapes
    // KaTeX's layout styles survive (they are not passed through the sanitiser).
    expect(el.querySelector(".katex-html [style]")).not.toBeNull();
  });

  it("leaves prices and escaped dollars alone", () => {
    for (const text of ["It costs $5 and $10.", "Between $ 5 and 6 $ here", "US$5 or US$6", "a \\$x\\$ b", "`$x$` in code"]) {
      const el = dom(renderMarkdown(text));
      expect(el.querySelector(".katex"), text).toBeNull();
    }
    expect(dom(renderMarkdown("pay $5 and $10")).textContent!.trim()).toBe("pay $5 and $10");
  });

  it("shows bad TeX as its source, never an exception", () => {
    const el = dom(renderMarkdown("$\\frac{1}{$ and $x^{$"));
    expect(el.textContent).toContain("\\frac{1}{");
  });

  it("keeps the model's HTML inert inside math", () => {
    const el = dom(renderMarkdown("$<img src=x onerror=alert(1)>$ and $\\href{javascript:alert(1)}{x}$"));
    expect(el.querySelector("img")).toBeNull();
    expect(el.querySelector("a")).toBeNull();
    expect(el.querySelector("[onerror]")).toBeNull();
  });

  it("finds an unclosed formula in streaming text", () => {
    expect(openMath("Sum:\n\n$$\n\\sum_{i=1}^n")).toEqual({ at: 6, display: true });
    expect(openMath("a \\[x")).toEqual({ at: 2, display: true });
    expect(openMath("so \\(E=mc")).toEqual({ at: 3, display: false });
    expect(openMath("done $$x$$ and \\(y\\)")).toBeNull();
    expect(openMath("`$$` is code")).toBeNull();
  });

  it("shows a half-received display formula as its source, not as garbage", () => {
    const el = dom(renderMarkdown("Sum:\n\n$$\n\\sum_{i=1}^n i", { streaming: true }));
    expect(el.querySelector(".katex")).toBeNull();
    expect(el.querySelector(".math-pending")?.textContent).toBe("$$\n\\sum_{i=1}^n i");
    expect(el.querySelector("p")?.textContent).toBe("Sum:");
    // An inline \( that has not closed is held back (it would show as "(").
    expect(dom(renderMarkdown("so \\(E=mc", { streaming: true })).textContent!.trim()).toBe("so");
  });
});

describe("markdown extras", () => {
  it("renders task lists as disabled checkboxes", () => {
    const el = dom(renderMarkdown("- [ ] todo\n- [x] done\n- plain\n"));
    const boxes = el.querySelectorAll<HTMLInputElement>("input");
    expect(boxes).toHaveLength(2);
    expect([...boxes].map((b) => [b.type, b.checked, b.disabled])).toEqual([
      ["checkbox", false, true],
      ["checkbox", true, true],
    ]);
    expect([...boxes].map((b) => b.getAttribute("aria-label"))).toEqual(["Not done", "Done"]);
  });

  it("never lets the model's own inputs through", () => {
    expect(dom(sanitize('<input type="text" value="x"><input type="checkbox">')).querySelectorAll("input")).toHaveLength(1);
    expect(dom(renderMarkdown('<input type="checkbox"> <input type="text">')).querySelector("input")).toBeNull();
  });

  it("aligns table columns and breaks lines at <br> in cells only", () => {
    const el = dom(renderMarkdown("| L | C | R |\n|:--|:-:|--:|\n| a<br>b | **x<br/>y** | 3 |\n\nOutside <br> stays text\n"));
    expect([...el.querySelectorAll("th")].map((th) => th.getAttribute("align"))).toEqual(["left", "center", "right"]);
    const cells = el.querySelectorAll("td");
    expect(cells[0]!.innerHTML).toBe("a<br>b");
    expect(cells[1]!.querySelector("strong br")).not.toBeNull();
    expect(el.querySelector("p")!.textContent).toBe("Outside <br> stays text");
    expect(el.querySelectorAll("br")).toHaveLength(2);
  });

  it("tells ~sub~ from ~~strike~~, and does ^sup^", () => {
    const el = dom(renderMarkdown("H~2~O, ~~gone~~, x^2^ and ~ 5 min ~"));
    expect(el.querySelector("sub")?.textContent).toBe("2");
    expect(el.querySelector("del")?.textContent).toBe("gone");
    expect(el.querySelector("sup")?.textContent).toBe("2");
    expect(el.querySelectorAll("sub")).toHaveLength(1);
  });
});

describe("highlighting", () => {
  it("loads a language on first use and highlights once it is there", async () => {
    const source = "```go\nfunc main() {}\n```\n";
    const first = dom(renderMarkdown(source));
    const wait = takeWaits();
    expect(first.querySelector("code")!.className).toContain("language-go");
    expect(wait).not.toBeNull();
    await wait;
    const second = dom(renderMarkdown(source));
    expect(takeWaits()).toBeNull();
    expect(second.querySelector(".hljs-keyword")?.textContent).toBe("func");
  });

  it("knows the common languages by their usual names", async () => {
    const samples: [string, string, string][] = [
      ["py", "def f(): pass", "def"],
      ["ts", "const x: number = 1", "const"],
      ["sh", "if true; then echo; fi", "if"],
      ["rust", "fn main() {}", "fn"],
      ["java", "public class A {}", "public"],
      ["cpp", "int main() { return 0; }", "int"],
      ["sql", "SELECT 1", "SELECT"],
      ["yaml", "a: true", "true"],
      ["css", "a { color: red }", "color"],
      ["diff", "+added", "+added"],
      ["json", '{"a": true}', "true"],
      ["html", "<div></div>", "div"],
    ];
    for (const [lang] of samples) renderMarkdown("```" + lang + "\nx\n```");
    await takeWaits();
    for (const [lang, code, token] of samples) {
      const el = dom(renderMarkdown("```" + lang + "\n" + code + "\n```"));
      const spans = [...el.querySelectorAll("code span")].map((s) => s.textContent);
      expect(spans, lang).toContain(token);
    }
  });

  it("highlights a code block while it grows, freezing finished lines", async () => {
    await loadLanguage("python");
    const code = document.createElement("code");
    const view = new GrowingCode(code, "python", sanitize);
    const program = 'def f(x):\n    """Doc\n    more"""\n    return x + 1\n\nprint(f(2))\n';
    const frozen = code.firstChild as HTMLElement;
    let frozenAt = 0;
    for (let i = 1; i <= program.length; i++) {
      expect(view.update(program.slice(0, i))).toBe(true);
      expect(code.textContent).toBe(program.slice(0, i));
      // Finished pieces are never redone: what was frozen stays, unchanged, at the start.
      const now = frozen.innerHTML;
      expect(now.startsWith(frozenAt === 0 ? "" : now.slice(0, frozenAt))).toBe(true);
      frozenAt = now.length;
    }
    expect(code.querySelector(".hljs-keyword")?.textContent).toBe("def");
    expect(code.querySelector(".hljs-string")?.textContent).toBe('"""Doc\n    more"""');
    expect(code.querySelector(".hljs-number")?.textContent).toBe("1");
    expect(view.update("other")).toBe(false);
  });
});

describe("inline math spacing", () => {
  it("puts no space between a formula and the punctuation after it", async () => {
    await loadMath();
    expect(renderMarkdown("a $x$, b")).toMatch(/<\/span>, b<\/p>/);
  });
});

describe("a load that fails", () => {
  it("leaves the piece plain and is not asked for again", async () => {
    const { need, once, takeWaits } = await import("../src/lib/lazy");
    let calls = 0;
    const broken = once(async () => {
      calls++;
      throw new Error("chunk gone");
    });
    need(broken.get());
    await takeWaits(); // settles, does not throw
    expect(broken.failed()).toBe(true);
    expect(broken.value()).toBeNull();
    await broken.get().catch(() => undefined);
    expect(calls).toBe(1);
  });
});
