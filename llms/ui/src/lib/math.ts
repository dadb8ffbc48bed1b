/**
 * Math in answers, typeset with KaTeX (loaded on first use): `$…$` and `\(…\)` inline,
 * `$$…$$` and `\[…\]` displayed. The `\(…\)` form must be taken before markdown's escapes
 * (which would turn `\(` into `(`), so this is a marked extension whose tokenizers run first.
 *
 * `$` is also money, so `$…$` is math only as in Pandoc: no space after the opening `$`, none
 * before the closing one, the closing one not followed by a digit, and the opening one not
 * right after a letter or digit (`US$5`). So "$5 and $10" stays text.
 *
 * KaTeX's HTML keeps its inline styles (its layout needs them), so it is not passed through the
 * sanitiser: the renderer leaves a placeholder that `fillMath` replaces after sanitising. KaTeX
 * escapes the TeX it is given and, with `trust: false`, makes no links or other elements.
 */
import type { KatexOptions } from "katex";
import type { MarkedExtension, Tokens } from "marked";
import { escapeHtml } from "./highlight";
import { need, once } from "./lazy";

type Katex = typeof import("katex").default;

const katex = once(async (): Promise<Katex> => {
  const [module] = await Promise.all([import("katex"), import("katex/dist/katex.min.css")]);
  return module.default;
});

/** Start loading KaTeX (e.g. in tests, or when idle); resolves when it is ready. */
export function loadMath(): Promise<unknown> {
  return katex.get();
}

const OPTIONS: KatexOptions = { throwOnError: false, trust: false, strict: "ignore", output: "htmlAndMathml", maxExpand: 500 };

interface MathToken extends Tokens.Generic {
  type: "math" | "inlineMath";
  raw: string;
  tex: string;
  display: boolean;
}

// Display math: `$$…$$` or `\[…\]` (may span lines, not a blank one).
const DISPLAY = /^(?:\$\$((?:\\[\s\S]|[^\\$]|\$(?!\$))+?)\$\$|\\\[((?:\\(?!\])[\s\S]|[^\\])+?)\\\])/;
const PAREN = /^\\\(((?:\\(?!\))[\s\S]|[^\\\n])+?)\\\)/;
// `$x$`: no space after the opener, none before the closer, no digit after the closer.
const DOLLAR = /^\$(?![\s$])((?:\\[\s\S]|[^\\$\n])+?)(?<![\s\\])\$(?!\d)/;
const BLOCK = /^ {0,3}(?:\$\$((?:\\[\s\S]|[^\\$]|\$(?!\$))+?)\$\$|\\\[((?:\\(?!\])[\s\S]|[^\\])+?)\\\])[ \t]*(?:\n+|$)/;

function inlineMatch(src: string): MathToken | undefined {
  const display = DISPLAY.exec(src);
  if (display && !/\n[ \t]*\n/.test(display[0])) {
    return { type: "inlineMath", raw: display[0], tex: (display[1] ?? display[2]!).trim(), display: true };
  }
  const paren = PAREN.exec(src);
  if (paren) return { type: "inlineMath", raw: paren[0], tex: paren[1]!.trim(), display: false };
  const dollar = DOLLAR.exec(src);
  if (dollar) return { type: "inlineMath", raw: dollar[0], tex: dollar[1]!, display: false };
  return undefined;
}

/** Where the next inline math might start in `src` (marked stops its plain text there). */
function inlineStart(src: string): number | undefined {
  const pattern = /\$|\\[([]/g;
  for (let match = pattern.exec(src); match; match = pattern.exec(src)) {
    const at = match.index;
    const before = at > 0 ? src[at - 1]! : "";
    if (match[0] === "$" && (before === "\\" || /[\p{L}\p{N}]/u.test(before))) continue;
    if (inlineMatch(src.slice(at))) return at;
    if (match[0] === "$" && src[at + 1] === "$") pattern.lastIndex++; // `$$` that did not close
  }
  return undefined;
}

let pending: string[] = [];
let nonce = "";

function placeholder(token: MathToken): string {
  const lib = katex.value();
  if (lib === null) {
    if (!katex.failed()) need(katex.get());
    const tag = token.display ? "div" : "span";
    return `<${tag} class="math-pending">${escapeHtml(token.raw)}</${tag}>`;
  }
  const html = lib.renderToString(token.tex, { ...OPTIONS, displayMode: token.display });
  pending.push(token.display ? `<div class="math-display">${html}</div>` : html);
  return `<span data-math="${nonce}-${pending.length - 1}"></span>`;
}

export const mathExtension: MarkedExtension = {
  extensions: [
    {
      name: "math",
      level: "block",
      tokenizer(src: string): MathToken | undefined {
        const match = BLOCK.exec(src);
        if (!match || /\n[ \t]*\n/.test(match[0].trimEnd())) return undefined;
        return { type: "math", raw: match[0], tex: (match[1] ?? match[2]!).trim(), display: true };
      },
      renderer: (token) => placeholder(token as MathToken) + "\n",
    },
    {
      name: "inlineMath",
      level: "inline",
      start: inlineStart,
      tokenizer(src: string): MathToken | undefined {
        return inlineMatch(src);
      },
      renderer: (token) => placeholder(token as MathToken),
    },
  ],
};

/** Begin a render: placeholders made from now on are filled by `fillMath`. */
export function beginMath(): void {
  pending = [];
  nonce = Math.random().toString(36).slice(2, 10);
}

/** Put the typeset math in place of its placeholders (after sanitising). */
export function fillMath(html: string): string {
  if (pending.length === 0) return html;
  const typeset = pending;
  pending = [];
  return html.replace(new RegExp(`<span data-math="${nonce}-(\\d+)"></span>`, "g"), (_, i: string) => typeset[Number(i)] ?? "");
}

/**
 * For text still streaming: where an unclosed `$$`, `\[` or `\(` starts, or null. Until it
 * closes, a display formula is shown as its source, muted, and an inline one not at all,
 * instead of half a formula flickering through markdown (`\(` would show as `(`).
 */
export function openMath(text: string): { at: number; display: boolean } | null {
  let open = -1;
  let openWith = "";
  const pattern = /\\\$|\$\$|\\\[|\\\]|\\\(|\\\)|`+/g;
  let code = "";
  for (let match = pattern.exec(text); match; match = pattern.exec(text)) {
    const token = match[0];
    if (token.startsWith("`")) {
      if (open === -1) code = code === "" ? token : code === token ? "" : code;
      continue;
    }
    if (code !== "" || token === "\\$") continue;
    if (open === -1) {
      if (token === "$$" || token === "\\[" || token === "\\(") {
        open = match.index;
        openWith = token;
      }
    } else if ((openWith === "$$" && token === "$$") || (openWith === "\\[" && token === "\\]") || (openWith === "\\(" && token === "\\)")) {
      open = -1;
    }
  }
  return open === -1 ? null : { at: open, display: openWith !== "\\(" };
}
