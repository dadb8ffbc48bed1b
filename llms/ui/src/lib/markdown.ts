/**
 * Markdown → safe HTML. marked parses (GFM: tables with alignment, task lists, strikethrough;
 * plus math, sub/superscript and `<br>` in table cells, see math.ts and marked-extras.ts); raw
 * HTML in the model's text is shown as text, never interpreted; DOMPurify sanitises the result
 * (so a `javascript:` link loses its URL) and every link opens in a new tab with
 * `rel="noopener noreferrer"`. Each code block gets a header with its language and a copy button
 * (handled by one delegated listener: the CSP forbids inline handlers).
 */
import DOMPurify from "dompurify";
import { Marked, type Tokens } from "marked";
import { t } from "../i18n";
import { escapeHtml, highlightCode } from "./highlight";
import { extrasExtension } from "./marked-extras";
import { beginMath, fillMath, mathExtension, openMath } from "./math";

export interface RenderOptions {
  /** false while the block is still streaming: escaping is enough until it settles. */
  highlight?: boolean;
  /** The text is still being written: an unclosed formula is shown as its source until it closes. */
  streaming?: boolean;
}

let highlightNext = true;

const marked = new Marked({
  gfm: true,
  breaks: false,
  async: false,
  renderer: {
    html({ text }: Tokens.HTML | Tokens.Tag): string {
      return escapeHtml(text);
    },
    code({ text, lang }: Tokens.Code): string {
      const label = lang?.trim().split(/\s+/, 1)[0] ?? "";
      const { html, language } = highlightNext ? highlightCode(text, label) : { html: escapeHtml(text), language: null };
      const cls = language ? ` class="hljs language-${escapeHtml(language)}"` : ' class="hljs"';
      return (
        '<div class="code-block">' +
        `<div class="code-head"><span class="code-lang">${escapeHtml(label || "text")}</span>` +
        `<button type="button" class="code-copy" data-testid="copy-code" aria-label="${escapeHtml(t("markdown.copyCode"))}">${escapeHtml(t("markdown.copy"))}</button></div>` +
        `<pre><code${cls}>${html}</code></pre></div>\n`
      );
    },
    checkbox({ checked }: Tokens.Checkbox): string {
      // Read-only; named for screen readers and accessibility checks (the item's text follows).
      const state = checked ? `checked="" aria-label="${escapeHtml(t("markdown.done"))}"` : `aria-label="${escapeHtml(t("markdown.notDone"))}"`;
      return `<input type="checkbox" disabled="" ${state}> `;
    },
    image({ href, text }: Tokens.Image): string {
      // Remote images would be blocked by the CSP and could track the reader: show a link.
      if (/^data:image\/(png|jpe?g|gif|webp);/i.test(href)) {
        return `<img src="${escapeHtml(href)}" alt="${escapeHtml(text)}">`;
      }
      return `<a href="${escapeHtml(href)}">${escapeHtml(text || href)}</a>`;
    },
  },
});
marked.use(mathExtension, extrasExtension);

let hooked = false;

function installHooks(): void {
  if (hooked) return;
  hooked = true;
  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") {
      const href = node.getAttribute("href");
      if (href && !href.startsWith("#")) {
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer");
      }
    }
    // Task-list boxes (marked's, the only inputs: raw HTML is escaped) show, never change.
    if (node.tagName === "INPUT") node.setAttribute("disabled", "");
  });
  DOMPurify.addHook("uponSanitizeElement", (node, data) => {
    if (data.tagName === "input" && (node as Element).getAttribute?.("type") !== "checkbox") node.parentNode?.removeChild(node);
  });
}

const PURIFY = {
  USE_PROFILES: { html: true },
  ADD_ATTR: ["target"],
  FORBID_TAGS: ["style", "form", "textarea", "select", "iframe", "object", "embed"],
  FORBID_ATTR: ["style"],
};

export function sanitize(html: string): string {
  installHooks();
  return DOMPurify.sanitize(html, PURIFY) as unknown as string;
}

const CODE_BLOCK = /^( {0,3})(`{3,}|~{3,})([^\n`]*)\n([\s\S]*?)\n? {0,3}\2[`~]*[ \t]*\n*$/;

/** A block that is exactly one fenced code block: its language and code; else null. */
export function fencedCode(block: string): { lang: string; code: string } | null {
  const match = CODE_BLOCK.exec(block);
  if (!match || match[1] !== "") return null;
  const code = match[4]!;
  // A fence of the same kind inside means this is not one simple block.
  if (new RegExp(`^${match[2]![0] === "`" ? "`" : "~"}{${match[2]!.length},}`, "m").test(code)) return null;
  return { lang: match[3]!.trim().split(/\s+/, 1)[0] ?? "", code };
}

/** An empty code block (header with its language and copy button) built with DOM calls. */
export function codeBlockShell(lang: string): { root: HTMLElement; code: HTMLElement } {
  const root = document.createElement("div");
  root.className = "code-block";
  const head = document.createElement("div");
  head.className = "code-head";
  const label = document.createElement("span");
  label.className = "code-lang";
  label.textContent = lang || "text";
  const copy = document.createElement("button");
  copy.type = "button";
  copy.className = "code-copy";
  copy.dataset.testid = "copy-code";
  copy.setAttribute("aria-label", t("markdown.copyCode"));
  copy.textContent = t("markdown.copy");
  head.append(label, copy);
  const pre = document.createElement("pre");
  const code = document.createElement("code");
  pre.appendChild(code);
  root.append(head, pre);
  return { root, code };
}

/**
 * A code block built with DOM calls, no markdown parser: a long block costs only its text.
 * Unhighlighted, `code` may be appended to later (`Text.appendData`).
 */
export function codeBlockElement(lang: string, code: string, highlight: boolean): { root: HTMLElement; text: Text | null } {
  const { root, code: element } = codeBlockShell(lang);
  if (highlight) {
    const { html, language } = highlightCode(code, lang);
    element.className = language ? `hljs language-${language}` : "hljs";
    // highlight.js escapes the code; its output is only <span class> elements.
    element.innerHTML = sanitize(html);
    return { root, text: null };
  }
  element.className = "hljs";
  const text = document.createTextNode(code);
  element.appendChild(text);
  return { root, text };
}

export function renderMarkdown(source: string, options: RenderOptions = {}): string {
  highlightNext = options.highlight !== false;
  const open = options.streaming ? openMath(source) : null;
  const text = open === null ? source : source.slice(0, open.at);
  try {
    beginMath();
    let html = fillMath(sanitize(marked.parse(text) as string));
    if (open?.display) html += `<div class="math-pending">${escapeHtml(source.slice(open.at))}</div>`;
    return html;
  } finally {
    highlightNext = true;
  }
}
