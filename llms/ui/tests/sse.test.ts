// @vitest-environment node
import { describe, expect, it } from "vitest";
import { SSEDecoder, readSSE, type SSEEvent } from "../src/api/sse";
import { VECTORS, bytes, join, split } from "./vectors";

function decode(pieces: Uint8Array[], decoder = new SSEDecoder()): [string, string, string][] {
  const events: SSEEvent[] = [];
  for (const piece of pieces) events.push(...decoder.feed(piece));
  events.push(...decoder.flush());
  return events.map((e) => [e.type, e.data, e.lastEventId]);
}

function streamOf(pieces: Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    pull(controller) {
      if (i < pieces.length) controller.enqueue(pieces[i++]!);
      else controller.close();
    },
  });
}

const SIZES: [string, number | null][] = [
  ["whole", null],
  ["7-byte", 7],
  ["1-byte", 1],
];

describe("SSEDecoder on the protocol.md §2.5 vectors", () => {
  for (const [name, size] of SIZES) {
    VECTORS.forEach(([pieces, expected, retry], n) => {
      it(`v${n + 1} ${name}`, () => {
        const decoder = new SSEDecoder();
        expect(decode(split(pieces, size), decoder)).toEqual(expected);
        expect(decoder.retry).toBe(retry);
      });
    });

    it(`vectors joined into one piece decode the same (${name})`, () => {
      for (const [pieces, expected] of VECTORS) {
        expect(decode(split([join(pieces)], size))).toEqual(expected);
      }
    });
  }
});

describe("readSSE", () => {
  for (const [name, size] of SIZES) {
    it(`yields every vector's events from a ReadableStream (${name})`, async () => {
      for (const [pieces, expected] of VECTORS) {
        const got: [string, string, string][] = [];
        for await (const e of readSSE(streamOf(split(pieces, size)))) got.push([e.type, e.data, e.lastEventId]);
        expect(got).toEqual(expected);
      }
    });
  }

  it("reports every read, heartbeats included, and stops the body when the loop breaks", async () => {
    const sizes: number[] = [];
    let cancelled = false;
    const pieces = [bytes(": keep-alive\n\n"), bytes("id: 1\ndata: a\n\n"), bytes("id: 2\ndata: b\n\n")];
    let i = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(pieces[i++ % pieces.length]!);
      },
      cancel() {
        cancelled = true;
      },
    });
    const seen: string[] = [];
    for await (const event of readSSE(body, { onBytes: (n) => sizes.push(n) })) {
      seen.push(event.data);
      if (event.data === "b") break;
    }
    expect(seen).toEqual(["a", "b"]);
    expect(sizes).toEqual([14, 15, 15]);
    expect(cancelled).toBe(true);
  });

  it("throws the network error of a body that fails", async () => {
    let sent = false;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (!sent) {
          sent = true;
          controller.enqueue(bytes("data: a\n\n"));
        } else controller.error(new TypeError("network error"));
      },
    });
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const event of readSSE(body)) seen.push(event.data);
      })(),
    ).rejects.toThrow("network error");
    expect(seen).toEqual(["a"]);
  });
});

describe("SSEDecoder state", () => {
  it("keeps the last event id until changed; an empty id resets it", () => {
    const decoder = new SSEDecoder();
    decoder.feed(bytes("id: 5\n\n"));
    expect(decoder.lastEventId).toBe("5");
    decoder.feed(bytes("id: 7\ndata: a\n"));
    expect(decoder.lastEventId).toBe("5");
    decoder.feed(bytes("\nid\n\n"));
    expect(decoder.lastEventId).toBe("");
  });

  it("treats a CRLF split across reads as one line ending", () => {
    const decoder = new SSEDecoder();
    expect(decoder.feed(bytes("data: a\r"))).toEqual([]);
    expect(decoder.feed(bytes("\n"))).toEqual([]);
    expect(decoder.feed(bytes("data: b\r\n\r")).map((e) => e.data)).toEqual(["a\nb"]);
    expect(decoder.feed(bytes("\ndata: c\r\n\r\n")).map((e) => e.data)).toEqual(["c"]);
  });

  it("ignores empty reads", () => {
    const decoder = new SSEDecoder();
    expect(decoder.feed(bytes(""))).toEqual([]);
    expect(decoder.feed(bytes("data: a\r"))).toEqual([]);
    expect(decoder.feed(bytes(""))).toEqual([]);
    expect(decoder.feed(bytes("\n"))).toEqual([]);
    expect(decoder.feed(bytes("\n")).map((e) => e.data)).toEqual(["a"]);
  });

  it("strips a BOM split across reads; a partial BOM is data", () => {
    expect(decode([bytes("\xef"), bytes("\xbb"), bytes("\xbfdata: a\n\n")])).toEqual([["message", "a", ""]]);
    expect(decode([bytes("\xef"), bytes("\xbbdata: a\n\ndata: b\n\n")])).toEqual([["message", "b", ""]]);
  });

  it("turns invalid UTF-8 into U+FFFD", () => {
    expect(decode([bytes("data: a\xffb\xe2\x82\n\n")])).toEqual([["message", "a\ufffdb\ufffd", ""]]);
  });

  it("tracks a pending event", () => {
    const decoder = new SSEDecoder();
    expect(decoder.pending).toBe(false);
    decoder.feed(bytes("data: a"));
    expect(decoder.pending).toBe(true);
    decoder.feed(bytes("bc\n"));
    expect(decoder.pending).toBe(true);
    expect(decoder.feed(bytes("\n")).map((e) => e.data)).toEqual(["abc"]);
    expect(decoder.pending).toBe(false);
    decoder.feed(bytes(": keep-alive\n"));
    expect(decoder.pending).toBe(false);
  });

  it("decodes a 1 MiB event arriving in 64 KiB pieces", () => {
    const payload = "x".repeat(1024 * 1024);
    const body = new TextEncoder().encode(`data: ${payload}\n\ndata: end\n\n`);
    const decoder = new SSEDecoder();
    const lengths: number[] = [];
    for (let i = 0; i < body.length; i += 65536) {
      for (const e of decoder.feed(body.subarray(i, i + 65536))) lengths.push(e.data.length);
    }
    expect(lengths).toEqual([payload.length, 3]);
  });
});
