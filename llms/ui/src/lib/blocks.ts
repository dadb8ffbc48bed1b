/**
 * Splits a growing markdown text into settled blocks and a tail, incrementally.
 *
 * A block settles when the next one starts: at a non-indented line after a blank line, before a
 * top-level code fence, or after the fence that closes it; blank lines inside a fence never
 * split. A streaming answer then renders each settled block once and only re-renders the tail on
 * each frame, so the cost per frame does not grow with the answer.
 *
 * A block that grows past `softLimit` characters without ending (a wall of text with no blank
 * line) is cut at its last line break or space: the piece is `joined` to the next one, and the
 * view lets such pieces flow on as one paragraph.
 */

interface Fence {
  char: string;
  length: number;
  topLevel: boolean;
  /** The info string (the language). */
  info: string;
  /** Where the code starts (after the opening line). */
  body: number;
}

/** A top-level fenced code block still open at the end of the text. */
export interface OpenFence {
  info: string;
  /** The code so far (up to the end of the text). */
  code: string;
  /** Where the code starts in the text (a new value means another block). */
  start: number;
}

const FENCE = /^( *)(`{3,}|~{3,})(.*)$/;

export interface SplitResult {
  /** The text does not extend the previous one: every block is new. */
  reset: boolean;
  /** Settled block sources (all of them; the new ones are at the end). */
  blocks: readonly string[];
  /** How many blocks settled in this update. */
  added: number;
  /** The text after the last settled block (may be ""). */
  tail: string;
  /** joined[i]: block i was cut inside a paragraph and goes on in the next block (or the tail). */
  joined: readonly boolean[];
  /** The tail is an unfinished top-level code block. */
  openFence: OpenFence | null;
}

export class BlockSplitter {
  private text = "";
  private readonly settled: string[] = [];
  private readonly joined: boolean[] = [];
  private blockStart = 0;
  private scan = 0; // start of the first line not yet examined
  private fence: Fence | null = null;
  private blank = false; // the previous examined line was blank

  constructor(private readonly softLimit = 12_000) {}

  update(text: string): SplitResult {
    let reset = false;
    if (text.length < this.text.length || !text.startsWith(this.text)) {
      this.resetState();
      reset = true;
    }
    this.text = text;
    const before = this.settled.length;
    for (;;) {
      const newline = text.indexOf("\n", this.scan);
      if (newline === -1) break;
      this.line(text.slice(this.scan, newline), this.scan, newline + 1);
      this.scan = newline + 1;
    }
    while (this.fence === null && text.length - this.blockStart > this.softLimit && this.cutSoftly());
    return {
      reset,
      blocks: this.settled,
      added: this.settled.length - before,
      tail: text.slice(this.blockStart),
      joined: this.joined,
      openFence: this.openFence(),
    };
  }

  private openFence(): OpenFence | null {
    const fence = this.fence;
    if (fence === null || !fence.topLevel) return null;
    return { info: fence.info, code: this.text.slice(fence.body), start: fence.body };
  }

  /** Settle the start of an overlong block at a line break (or a space); false if none. */
  private cutSoftly(): boolean {
    const text = this.text;
    const limit = Math.min(text.length - 512, this.blockStart + this.softLimit);
    const floor = this.blockStart + this.softLimit / 2;
    let cut = -1;
    for (let at = text.lastIndexOf("\n", limit); at > floor; at = text.lastIndexOf("\n", at - 1)) {
      const next = text.charCodeAt(at + 1);
      if (next !== 32 && next !== 9 && next !== 10) {
        cut = at + 1;
        break;
      }
    }
    if (cut === -1) {
      const space = text.lastIndexOf(" ", limit);
      if (space > floor) cut = space + 1;
    }
    if (cut === -1) return false;
    this.settle(cut);
    this.joined[this.joined.length - 1] = true;
    return true;
  }

  private resetState(): void {
    this.text = "";
    this.settled.length = 0;
    this.joined.length = 0;
    this.blockStart = 0;
    this.scan = 0;
    this.fence = null;
    this.blank = false;
  }

  private settle(end: number): void {
    if (end <= this.blockStart) return; // the block already starts later (a soft cut)
    const block = this.text.slice(this.blockStart, end);
    if (block.trim() !== "") {
      this.settled.push(block);
      this.joined.push(false);
    }
    this.blockStart = end;
  }

  private line(line: string, start: number, end: number): void {
    const fence = this.fence;
    if (fence !== null) {
      const match = FENCE.exec(line);
      if (match && match[2]![0] === fence.char && match[2]!.length >= fence.length && match[3]!.trim() === "") {
        this.fence = null;
        if (fence.topLevel) this.settle(end);
      }
      return;
    }
    if (line.trim() === "") {
      this.blank = true;
      return;
    }
    const indented = /^[ \t]/.test(line);
    if (this.blank && !indented) this.settle(start);
    this.blank = false;
    const open = FENCE.exec(line);
    if (open && !(open[2]![0] === "`" && open[3]!.includes("`"))) {
      const topLevel = open[1]!.length === 0;
      if (topLevel) this.settle(start);
      this.fence = { char: open[2]![0]!, length: open[2]!.length, topLevel, info: open[3]!.trim(), body: end };
    }
  }
}
