/**
 * Small marked extensions for what models write and marked's GFM leaves out:
 * - `H~2~O` subscript and `x^2^` superscript (Pandoc's syntax: no space inside); `~~strike~~`
 *   stays GitHub's strikethrough. (There is no maintained marked plugin for these; the
 *   markdown-it ones do not fit marked.)
 * - `<br>` inside a table cell is a line break (a cell cannot hold a newline, so models write
 *   it); raw HTML anywhere else is still shown as text.
 */
import type { MarkedExtension, Token, Tokens } from "marked";

function script(name: "sub" | "sup", mark: string): NonNullable<MarkedExtension["extensions"]>[number] {
  const m = mark === "^" ? "\\^" : mark;
  const rule = new RegExp(`^${m}(?![${m}\\s])((?:\\\\[\\s\\S]|[^${m}\\s\\\\])+?)${m}(?!${m})`);
  return {
    name,
    level: "inline",
    start(src: string): number | undefined {
      for (let at = src.indexOf(mark); at !== -1; at = src.indexOf(mark, at + 1)) {
        if (src[at - 1] !== mark && rule.test(src.slice(at))) return at;
      }
      return undefined;
    },
    tokenizer(src: string): Tokens.Generic | undefined {
      const match = rule.exec(src);
      if (!match) return undefined;
      return { type: name, raw: match[0], text: match[1]!, tokens: this.lexer.inlineTokens(match[1]!) };
    },
    renderer(token: Tokens.Generic): string {
      return `<${name}>${this.parser.parseInline(token.tokens ?? [])}</${name}>`;
    },
  };
}

const BR = /^<br\s*\/?>$/i;

/** Every `<br>` tag among the tokens (at any depth) becomes a line break. */
function breaksIn(tokens: Token[] | undefined): void {
  for (const token of tokens ?? []) {
    if (token.type === "html" && BR.test(token.raw.trim())) {
      (token as Token).type = "br";
    }
    if ("tokens" in token) breaksIn(token.tokens);
  }
}

export const extrasExtension: MarkedExtension = {
  extensions: [script("sub", "~"), script("sup", "^")],
  walkTokens(token: Token): void {
    if (token.type !== "table") return;
    const table = token as Tokens.Table;
    for (const cell of table.header) breaksIn(cell.tokens);
    for (const row of table.rows) for (const cell of row) breaksIn(cell.tokens);
  },
};
