/**
 * A code block still being written, highlighted as it grows without highlighting all of it on
 * every token: only complete lines are highlighted, and a piece after which the highlighter is
 * back at top level (not inside a string or comment) is frozen and never highlighted again. Each
 * new line then costs the lines since the last such point; the unfinished last line is plain
 * text, appended to.
 */
import { highlightPiece, languageName, MAX_HIGHLIGHT_CHARS } from "./highlight";

export class GrowingCode {
  private readonly frozen = document.createElement("span");
  private readonly live = document.createElement("span");
  private readonly rest = document.createTextNode("");
  private readonly language: string | null;
  private code = "";
  private frozenEnd = 0;
  private liveEnd = 0;

  /** `element` is the (empty) `<code>` to fill; `sanitize` cleans highlight.js's HTML. */
  constructor(
    element: HTMLElement,
    lang: string,
    private readonly sanitize: (html: string) => string,
  ) {
    this.language = languageName(lang);
    element.className = this.language ? `hljs language-${this.language}` : "hljs";
    element.append(this.frozen, this.live, this.rest);
  }

  /** Show `code`; false when it does not extend what is shown (make a new one). */
  update(code: string): boolean {
    if (!code.startsWith(this.code)) return false;
    const before = this.code.length;
    this.code = code;
    const lineEnd = code.lastIndexOf("\n") + 1;
    const liveEnd = this.liveEnd;
    if (this.language !== null && lineEnd > liveEnd && lineEnd <= MAX_HIGHLIGHT_CHARS) {
      const piece = highlightPiece(code.slice(this.frozenEnd, lineEnd), this.language);
      if (piece !== null) {
        const html = this.sanitize(piece.html);
        if (piece.clean) {
          this.frozen.insertAdjacentHTML("beforeend", html);
          this.live.replaceChildren();
          this.frozenEnd = lineEnd;
        } else {
          this.live.innerHTML = html;
        }
        this.liveEnd = lineEnd;
      }
    }
    if (this.liveEnd !== liveEnd) this.rest.data = code.slice(this.liveEnd);
    else if (code.length > before) this.rest.appendData(code.slice(before));
    return true;
  }
}
