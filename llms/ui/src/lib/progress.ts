/**
 * The progress cue of an answer whose request set max_tokens: how far along it is, from the
 * output tokens the gateway counted (usage) when it has, else estimated from the text so far
 * (about four characters a token), and said to be an estimate.
 */
import type { ChatMessage } from "../stores/message";

export const CHARS_PER_TOKEN = 4;

export interface Progress {
  /** Output tokens so far (counted or estimated), at most `max`. */
  tokens: number;
  max: number;
  /** 0…1. */
  ratio: number;
  /** From characters, not from the gateway's count. */
  estimate: boolean;
}

/** The answer's progress; null when its request set no max_tokens. */
export function progressOf(message: ChatMessage): Progress | null {
  const max = message.maxTokens;
  if (!max || max <= 0) return null;
  const counted = message.usage?.completion_tokens;
  let tokens: number;
  let estimate = false;
  if (typeof counted === "number") {
    tokens = counted;
  } else {
    const chars = message.content.length + (message.reasoning?.length ?? 0) - (message.outputBase ?? 0);
    tokens = Math.ceil(Math.max(0, chars) / CHARS_PER_TOKEN);
    estimate = true;
  }
  tokens = Math.min(tokens, max);
  return { tokens, max, ratio: tokens / max, estimate };
}
