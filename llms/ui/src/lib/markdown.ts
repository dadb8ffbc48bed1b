/**
 * Markdown → safe HTML. marked parses; raw HTML in the model's text is shown as text, never
 * interpreted; DOMPurify sanitises the result (so a `javascript:` link loses its URL) and every
 * link opens in a new tab with `rel="noopener noreferrer"`. Each code block gets a header with its
 * language and a copy button (handled by one delegated listener: the CSP forbids inline handlers).
 */
import DOMPurify from "dompurify";
import { Marked, type Tokens } from "marked";
import { escapeHtml, highlightCode } from "./highlight";

export interface RenderOptions {
  /** false while the block is still streaming: escaping is enough until it settles. */
  highlight?: boolean;
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
        '<button type="button" class="code-copy" data-testid="copy-code" aria-label="Copy code">Copy</button></div>' +
        `<pre><code${cls}>${html}</code></pre></div>\n`
      );
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
  });
}

const PURIFY = {
  USE_PROFILES: { html: true },
  ADD_ATTR: ["target"],
  FORBID_TAGS: ["style", "form", "input", "textarea", "select", "iframe", "object", "embed"],
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

/**
 * A code block built with DOM calls, no markdown parser: a long block (or a block still
 * streaming) costs only its text. `code` may be appended to later (`Text.appendData`).
 */
export function codeBlockElement(lang: string, code: string, highlight: boolean): { root: HTMLElement; text: Text | null } {
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
  copy.setAttribute("aria-label", "Copy code");
  copy.textContent = "Copy";
  head.append(label, copy);
  const pre = document.createElement("pre");
  const element = document.createElement("code");
  pre.appendChild(element);
  root.append(head, pre);
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
  try {
    return sanitize(marked.parse(source) as string);
  } finally {
    highlightNext = true;
  }
}
