/**
 * Auto-generated chat titles: after the first answer of a new chat, the chat's own model is asked
 * (one small non-streaming request) for a short title, which replaces the first-words title
 * unless the user renamed the chat meanwhile. Any failure is silent: the first words stay.
 */
import type { Gateway } from "../api/client";
import type { ChatCompletion, ChatRequest } from "../api/types";
import type { Thread } from "../stores/db";
import type { ChatMessage } from "../stores/message";

/** Enough for a few words, even from a wordy model; nothing near an answer's cost. */
export const TITLE_MAX_TOKENS = 24;
/** The longest title kept (the sidebar shows about 30 characters; a tooltip the rest). */
export const TITLE_MAX_LENGTH = 60;
/** How much of the question and of the answer the model sees. */
export const QUESTION_CHARS = 1000;
export const ANSWER_CHARS = 500;
/** The header that marks the request as the UI's own (the gateway ignores it; logs and tests see it). */
export const PURPOSE_HEADER = "X-Llms-Purpose";
export const PURPOSE_TITLE = "title";
const TIMEOUT_MS = 30_000;

export const TITLE_INSTRUCTION =
  "Write a short title (at most 6 words) for the conversation below, in the language of the question. " +
  "Reply with the title only: no quotes, no punctuation at the end, no explanation.";

function clip(text: string, max: number): string {
  const trimmed = text.trim();
  return trimmed.length > max ? `${trimmed.slice(0, max).trimEnd()}…` : trimmed;
}

/** The request for a title: one user turn (some models take no system turn), small, whole. */
export function titleRequest(model: string, question: string, answer: string): ChatRequest {
  const content =
    `${TITLE_INSTRUCTION}\n\nQuestion:\n${clip(question, QUESTION_CHARS)}\n\n` +
    `Start of the answer:\n${clip(answer, ANSWER_CHARS)}`;
  return { model, messages: [{ role: "user", content }], stream: false, max_tokens: TITLE_MAX_TOKENS };
}

const QUOTES = /^["'`“”„‘’‚«»‹›*_#\s]+|["'`“”„‘’‚«»‹›*_\s]+$/g;

/**
 * What the model said, as a title: its first non-empty line, without a thinking block, a
 * "Title:" label, quotes, markdown marks or end punctuation, at most TITLE_MAX_LENGTH characters.
 * null when nothing usable is left.
 */
export function cleanTitle(raw: string | null | undefined): string | null {
  if (!raw) return null;
  let text = raw.replace(/<think>[\s\S]*?<\/think>/gi, "");
  if (/<think>/i.test(text)) return null; // cut off while thinking: no title in it
  const line = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .find((l) => l.replace(QUOTES, "") !== "");
  if (!line) return null;
  text = line
    .replace(QUOTES, "")
    .replace(/^(chat\s+)?(title|titel|subject|topic)\s*[:：-]\s*/i, "")
    .replace(QUOTES, "")
    .replace(/[.。!！?？:：;；,，…\s]+$/u, "")
    .replace(QUOTES, "")
    .replace(/\s+/g, " ")
    .trim();
  if (!text) return null;
  if (text.length > TITLE_MAX_LENGTH) {
    const cut = text.slice(0, TITLE_MAX_LENGTH - 1);
    const space = cut.lastIndexOf(" ");
    text = `${(space > TITLE_MAX_LENGTH / 2 ? cut.slice(0, space) : cut).trimEnd()}…`;
  }
  return text;
}

/**
 * The chat should get a model's title now: its first answer just completed (one question, one
 * answer with text), the user has not named it, and no title was asked for it before (an
 * imported chat counts as asked).
 */
export function wantsTitle(thread: Thread, answer: ChatMessage): boolean {
  if (thread.titleEdited || thread.autoTitle) return false;
  const [question, first, ...rest] = thread.messages;
  return (
    rest.length === 0 &&
    question?.role === "user" &&
    first?.id === answer.id &&
    answer.state === "done" &&
    answer.content.trim() !== ""
  );
}

/** Ask `model` for a title; null on any failure (HTTP, network, timeout, nothing usable). */
export async function askTitle(gateway: Gateway, model: string, question: string, answer: string): Promise<string | null> {
  try {
    const response = await gateway.request("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json", [PURPOSE_HEADER]: PURPOSE_TITLE },
      body: JSON.stringify(titleRequest(model, question, answer)),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    const body = (await response.json()) as Partial<ChatCompletion>;
    return cleanTitle(body.choices?.[0]?.message?.content);
  } catch {
    return null;
  }
}

export interface TitleDeps {
  gateway: Gateway;
  threads: { setAutoTitle(id: string, title: string | null): Promise<void> };
  /** The setting (read at each answer): false, no title is asked. */
  enabled: () => boolean;
}

/**
 * After an answer completed: title the chat if it wants one. The chat is marked as asked at
 * once (a regenerate meanwhile asks nothing more); the title is set only if the user has not
 * renamed the chat by the time it comes.
 */
export async function autoTitle(deps: TitleDeps, thread: Thread, answer: ChatMessage): Promise<void> {
  if (!deps.enabled() || !wantsTitle(thread, answer)) return;
  thread.autoTitle = "asked";
  await deps.threads.setAutoTitle(thread.id, null).catch(() => undefined);
  const model = answer.model ?? thread.model;
  const question = thread.messages[0]?.content ?? "";
  if (!model) return;
  const title = await askTitle(deps.gateway, model, question, answer.content);
  if (title) await deps.threads.setAutoTitle(thread.id, title).catch(() => undefined);
}
