/**
 * Syntax highlighting: highlight.js core, each language loaded (its own small chunk) the first
 * time a code block names it. Until it is there the block is shown plain and the view renders
 * it again when it arrives (see lazy.ts).
 */
import hljs from "highlight.js/lib/core";
import type { LanguageFn } from "highlight.js";
import { need, once } from "./lazy";

type Module = { default: LanguageFn };

// Literal imports, so the bundler makes one chunk per language.
const LOADERS: Record<string, () => Promise<Module>> = {
  bash: () => import("highlight.js/lib/languages/bash"),
  c: () => import("highlight.js/lib/languages/c"),
  cpp: () => import("highlight.js/lib/languages/cpp"),
  csharp: () => import("highlight.js/lib/languages/csharp"),
  css: () => import("highlight.js/lib/languages/css"),
  diff: () => import("highlight.js/lib/languages/diff"),
  dockerfile: () => import("highlight.js/lib/languages/dockerfile"),
  go: () => import("highlight.js/lib/languages/go"),
  ini: () => import("highlight.js/lib/languages/ini"),
  java: () => import("highlight.js/lib/languages/java"),
  javascript: () => import("highlight.js/lib/languages/javascript"),
  json: () => import("highlight.js/lib/languages/json"),
  kotlin: () => import("highlight.js/lib/languages/kotlin"),
  lua: () => import("highlight.js/lib/languages/lua"),
  makefile: () => import("highlight.js/lib/languages/makefile"),
  markdown: () => import("highlight.js/lib/languages/markdown"),
  php: () => import("highlight.js/lib/languages/php"),
  powershell: () => import("highlight.js/lib/languages/powershell"),
  python: () => import("highlight.js/lib/languages/python"),
  r: () => import("highlight.js/lib/languages/r"),
  ruby: () => import("highlight.js/lib/languages/ruby"),
  rust: () => import("highlight.js/lib/languages/rust"),
  scss: () => import("highlight.js/lib/languages/scss"),
  sql: () => import("highlight.js/lib/languages/sql"),
  swift: () => import("highlight.js/lib/languages/swift"),
  typescript: () => import("highlight.js/lib/languages/typescript"),
  xml: () => import("highlight.js/lib/languages/xml"),
  yaml: () => import("highlight.js/lib/languages/yaml"),
};

const ALIASES: Record<string, string> = {
  sh: "bash", shell: "bash", zsh: "bash", console: "bash", shellsession: "bash",
  html: "xml", svg: "xml", vue: "xml", xhtml: "xml",
  py: "python", python3: "python", py3: "python",
  js: "javascript", jsx: "javascript", mjs: "javascript", cjs: "javascript", node: "javascript",
  ts: "typescript", tsx: "typescript", mts: "typescript",
  yml: "yaml", rs: "rust", golang: "go", "c++": "cpp", hpp: "cpp", cc: "cpp", cxx: "cpp", h: "c",
  cs: "csharp", "c#": "csharp", kt: "kotlin", kts: "kotlin", rb: "ruby", md: "markdown",
  patch: "diff", jsonc: "json", json5: "json", toml: "ini", docker: "dockerfile", make: "makefile",
  ps1: "powershell", pwsh: "powershell", postgresql: "sql", postgres: "sql", mysql: "sql", sqlite: "sql",
};

const loads = new Map<string, ReturnType<typeof once<void>>>();

/** The canonical name of a language we can highlight (`py` → python), or null. */
export function languageName(lang: string | undefined): string | null {
  const name = lang?.trim().toLowerCase().split(/\s+/, 1)[0] ?? "";
  const canonical = ALIASES[name] ?? name;
  return canonical in LOADERS ? canonical : null;
}

/** Load a language (once); resolves when it is registered. */
export function loadLanguage(name: string): Promise<void> {
  let load = loads.get(name);
  if (load === undefined) {
    const loader = LOADERS[name];
    if (!loader) return Promise.resolve();
    load = once(async () => {
      hljs.registerLanguage(name, (await loader()).default);
    });
    loads.set(name, load);
  }
  return load.get();
}

/** Whether the language is loaded; if not, its load is started (and needed by the render). */
function ready(name: string): boolean {
  if (hljs.getLanguage(name)) return true;
  if (!loads.get(name)?.failed()) need(loadLanguage(name));
  return false;
}

/** Larger blocks are shown plain: highlighting them would hold the main thread too long. */
export const MAX_HIGHLIGHT_CHARS = 20_000;

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/** HTML for `code` (escaped): highlighted when the language is known and the code not huge. */
export function highlightCode(code: string, lang: string | undefined): { html: string; language: string | null } {
  const language = languageName(lang);
  if (language === null || code.length > MAX_HIGHLIGHT_CHARS || !ready(language)) {
    return { html: escapeHtml(code), language };
  }
  try {
    return { html: hljs.highlight(code, { language, ignoreIllegals: true }).value, language };
  } catch {
    return { html: escapeHtml(code), language };
  }
}

/**
 * Highlights a piece of code; `clean` tells whether the highlighter ended outside any string,
 * comment or other construct, so that the code after it can be highlighted on its own.
 * null when the language is not loaded (its load is started).
 */
export function highlightPiece(code: string, language: string): { html: string; clean: boolean } | null {
  if (!ready(language)) return null;
  try {
    const result = hljs.highlight(code, { language, ignoreIllegals: true });
    // `_top` is the mode the highlighter ended in; the language itself at top level.
    return { html: result.value, clean: result._top === hljs.getLanguage(language) };
  } catch {
    return null;
  }
}
