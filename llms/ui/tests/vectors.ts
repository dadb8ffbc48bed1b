/**
 * protocol.md §2.5, the same 20 vectors as the gateway's tests/test_framing.py: (input pieces as
 * the network delivered them, expected events as (type, data, lastEventId), expected retry).
 */
const enc = new TextEncoder();

/** Python-style byte strings: "\xNN" escapes become those bytes, the rest is ASCII/UTF-8. */
export function bytes(text: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) out.push(c);
    else if (c <= 0xff && text.codePointAt(i)! <= 0xff) out.push(c); // raw byte
    else out.push(...enc.encode(text[i]!));
  }
  return new Uint8Array(out);
}

export type Expected = [type: string, data: string, lastEventId: string];

export const VECTORS: [pieces: Uint8Array[], events: Expected[], retry: number | null][] = [
  [[bytes("data: a\n\n")], [["message", "a", ""]], null],
  [[bytes("data: a\r\ndata: b\rdata: c\n\r\n")], [["message", "a\nb\nc", ""]], null],
  [[bytes("data: x\r"), bytes("\ndata: y\r"), bytes("\n\r"), bytes("\n")], [["message", "x\ny", ""]], null],
  [[bytes("\xef\xbb\xbfdata: a\n\n\xef\xbb\xbfdata: b\n\n")], [["message", "a", ""]], null],
  [[bytes(": ping\n\ndata: a\n:c\ndata: b\n\n")], [["message", "a\nb", ""]], null],
  [[bytes("data\n\ndata\ndata\n\n")], [["message", "", ""], ["message", "\n", ""]], null],
  [[bytes("data:\n\nevent: x\n\n")], [["message", "", ""]], null],
  [
    [bytes("data:a\n\ndata:  a\n\ndata:\ta\n\ndata: a \n\n")],
    [["message", "a", ""], ["message", " a", ""], ["message", "\ta", ""], ["message", "a ", ""]],
    null,
  ],
  [[bytes("data : a\n\n")], [], null],
  [[bytes('data: {"a":"b:c"}\n\n')], [["message", '{"a":"b:c"}', ""]], null],
  [
    [bytes("id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n")],
    [["message", "a", "1"], ["message", "b", "1"], ["message", "c", ""]],
    null,
  ],
  [[bytes("id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n")], [["message", "a", "1"], ["message", "b", "1"]], null],
  [[bytes("retry: 1000\n\nretry: 10x\nretry: -5\ndata: a\n\n")], [["message", "a", ""]], 1000],
  [[bytes("data: a\n\ndata: b\n")], [["message", "a", ""]], null],
  [
    [bytes("event: add\ndata: 1\n\ndata: 2\n\nevent:\ndata: 3\n\n")],
    [["add", "1", ""], ["message", "2", ""], ["message", "3", ""]],
    null,
  ],
  [[bytes("Data: x\nDATA: y\nfoo: bar\ndata: z\n\n")], [["message", "z", ""]], null],
  [[bytes('data: {"a":\ndata: 1}\n\n')], [["message", '{"a":\n1}', ""]], null],
  [[enc.encode("data: a\u2028b\x00c\n\n")], [["message", "a\u2028b\x00c", ""]], null],
  [[bytes("data: \xe2\x82"), bytes("\xac\n\n")], [["message", "\u20ac", ""]], null],
  [[bytes("id: 5\n\ndata: a\n\n")], [["message", "a", "5"]], null],
];

/** The pieces as given (size null), or re-cut into `size`-byte fragments within each piece. */
export function split(pieces: Uint8Array[], size: number | null): Uint8Array[] {
  if (size === null) return pieces;
  const out: Uint8Array[] = [];
  for (const piece of pieces) for (let i = 0; i < piece.length; i += size) out.push(piece.subarray(i, i + size));
  return out;
}

export function join(pieces: Uint8Array[]): Uint8Array {
  const total = pieces.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
