/**
 * A chat message and the state machine of an answer.
 *
 *   connecting → waiting → (retrying ⇄ waiting) → streaming → (retrying → streaming)* → done
 *                                                                         ↘ stopped / failed
 *
 * `applyRunEvent` folds what a run reports (api/chat.ts) into a message; `finishMessage` applies
 * the outcome. Both are pure mutations of plain data, so they work on the streaming draft (a
 * plain object updated at every token) and are easy to test.
 */
import type { RunEvent, RunOutcome } from "../api/chat";
import type { StoredError } from "../api/errors";
import type { ChatChunk, ChatCompletion, StreamStatus, Usage } from "../api/types";
import type { Attachment } from "../lib/attachments";
import { t } from "../i18n";
import { decimal } from "../lib/format";

export type Role = "user" | "assistant";
export type MessageState = "connecting" | "waiting" | "retrying" | "streaming" | "done" | "stopped" | "failed";

export const RUNNING_STATES: ReadonlySet<MessageState> = new Set(["connecting", "waiting", "retrying", "streaming"]);

export interface ToolCall {
  index: number;
  id: string;
  type: string;
  name: string;
  arguments: string;
}

export interface ChatMessage {
  id: string;
  role: Role;
  content: string;
  createdAt: number;
  /** A user message's images and text files (lib/attachments.ts). */
  attachments?: Attachment[];
  // Assistant answers only:
  state?: MessageState;
  reasoning?: string;
  toolCalls?: ToolCall[];
  model?: string;
  provider?: string;
  usage?: Usage;
  finishReason?: string | null;
  error?: StoredError;
  /** The connection was lost and could not be resumed: the text is partial. */
  interrupted?: boolean;
  /** What is happening now, in words ("Falling back from a to b", "Reconnecting…"). */
  notice?: string;
  streamId?: string;
  lastEventId?: number;
  mode?: "stream" | "complete";
  /** The streaming request failed before any byte; a non-streaming request answered. */
  fellBack?: boolean;
  reconnects?: number;
  startedAt?: number;
  firstTokenAt?: number;
  endedAt?: number;
  /** How long the model thought before answering (reasoning, then content). */
  reasoningMs?: number;
  /** Chunks that carried output (a live tokens/s estimate before usage arrives). */
  outputChunks?: number;
  /** Stopped by a cancel from elsewhere (another tab). */
  stoppedElsewhere?: boolean;
  /** How many times Continue extended this answer after a max-tokens cut. */
  continued?: number;
  /** The request's max_tokens (the progress cue: lib/progress.ts). */
  maxTokens?: number;
  /** Characters of text (content and reasoning) before this run's output: a Continue's start. */
  outputBase?: number;
  /**
   * Other versions of this turn (an edited question, a regenerated answer): each is this message
   * and every message after it, as they were. The active version's slot is empty (it is the
   * thread's messages from here on). See stores/versions.ts.
   */
  versions?: ChatMessage[][];
  /** Which of `versions` is shown. */
  version?: number;
}

/** Why an answer ended early, in words (null: it ended normally). */
export function cutReason(message: ChatMessage): string | null {
  if (message.state !== "done") return null;
  if (message.finishReason === "length") return "Cut off at the max-tokens limit";
  if (message.finishReason === "content_filter") return "Stopped by the provider's content filter";
  return null;
}

export function isRunning(message: ChatMessage): boolean {
  return message.state !== undefined && RUNNING_STATES.has(message.state);
}

export function newAnswer(id: string, model: string, now: number): ChatMessage {
  return {
    id,
    role: "assistant",
    content: "",
    createdAt: now,
    state: "connecting",
    model,
    startedAt: now,
    outputChunks: 0,
    reconnects: 0,
  };
}

function statusNotice(status: StreamStatus): string {
  const reason = status.reason ? `: ${status.reason}` : "";
  if (status.status === "falling_back") {
    const from = status.provider ? t("notice.providerNamed", { provider: status.provider }) : t("notice.theProvider");
    const to = status.next_provider ? `“${status.next_provider}”` : t("notice.nextProvider");
    return t("notice.fallingBack", { from, reason, to });
  }
  if (status.status === "retrying") {
    const from = status.provider ?? t("notice.theProvider");
    const attempt = (status.attempt ?? 0) + 1;
    return status.delay_s
      ? t("notice.retryingIn", { from, reason, delay: decimal(status.delay_s), attempt })
      : t("notice.retrying", { from, reason, attempt });
  }
  return status.reason ?? status.status.replace(/_/g, " ");
}

function markOutput(message: ChatMessage, now: number): void {
  if (message.firstTokenAt === undefined) message.firstTokenAt = now;
  message.outputChunks = (message.outputChunks ?? 0) + 1;
  if (message.state !== "streaming") {
    message.state = "streaming";
    message.notice = undefined;
  }
}

function endReasoning(message: ChatMessage, now: number): void {
  if (message.reasoning && message.reasoningMs === undefined) {
    message.reasoningMs = now - (message.firstTokenAt ?? now);
  }
}

export function applyChunk(message: ChatMessage, chunk: ChatChunk, now: number): void {
  if (chunk.usage) message.usage = chunk.usage;
  if (chunk.model && !message.model) message.model = chunk.model;
  const choice = chunk.choices?.[0];
  if (!choice) return;
  const delta = choice.delta ?? {};
  let output = false;
  if (delta.reasoning_content) {
    message.reasoning = (message.reasoning ?? "") + delta.reasoning_content;
    output = true;
  }
  if (delta.content || delta.tool_calls) endReasoning(message, now);
  if (delta.content) {
    message.content += delta.content;
    output = true;
  }
  if (delta.refusal) {
    message.content += delta.refusal;
    output = true;
  }
  if (delta.tool_calls) {
    const calls = (message.toolCalls ??= []);
    for (const part of delta.tool_calls) {
      let call = calls.find((c) => c.index === part.index);
      if (!call) {
        call = { index: part.index, id: "", type: "function", name: "", arguments: "" };
        calls.push(call);
      }
      if (part.id) call.id = part.id;
      if (part.type) call.type = part.type;
      if (part.function?.name) call.name += part.function.name;
      if (part.function?.arguments) call.arguments += part.function.arguments;
    }
    output = true;
  }
  if (choice.finish_reason) message.finishReason = choice.finish_reason;
  if (output) markOutput(message, now);
}

export function applyCompletion(message: ChatMessage, completion: ChatCompletion, now: number): void {
  const choice = completion.choices?.[0];
  const reply = choice?.message;
  message.content = reply?.content ?? reply?.refusal ?? "";
  if (reply?.reasoning_content) message.reasoning = reply.reasoning_content;
  if (reply?.tool_calls?.length) {
    message.toolCalls = reply.tool_calls.map((call, index) => ({
      index,
      id: call.id,
      type: call.type,
      name: call.function.name,
      arguments: call.function.arguments,
    }));
  }
  message.finishReason = choice?.finish_reason ?? null;
  if (completion.usage) message.usage = completion.usage;
  if (completion.model) message.model = completion.model;
  message.firstTokenAt ??= now;
  message.outputChunks = 1;
}

/** Fold one event of a run into the message. */
export function applyRunEvent(message: ChatMessage, event: RunEvent, now: number): void {
  switch (event.type) {
    case "request":
      if (event.mode === "complete") {
        message.mode = "complete";
        if (event.fallback) {
          message.fellBack = true;
          message.notice = t("notice.fallback");
        }
      } else if (event.mode === "stream") {
        message.mode = "stream";
      }
      break;
    case "open":
      if (event.streamId) message.streamId = event.streamId;
      if (event.provider) message.provider = event.provider;
      if (message.state === "connecting") message.state = "waiting";
      if (message.state === "retrying" && message.reconnects) {
        // Reconnected: the state returns to what the answer was doing.
        message.state = message.firstTokenAt === undefined ? "waiting" : "streaming";
        message.notice = undefined;
      }
      break;
    case "status":
      if (message.firstTokenAt === undefined) message.state = "retrying";
      message.notice = statusNotice(event.status);
      if (event.status.next_provider) message.provider = event.status.next_provider;
      break;
    case "chunk":
      applyChunk(message, event.chunk, now);
      if (event.seq !== null) message.lastEventId = event.seq;
      break;
    case "completion":
      applyCompletion(message, event.completion, now);
      if (event.provider) message.provider = event.provider;
      break;
    case "reconnecting": {
      message.state = "retrying";
      message.reconnects = (message.reconnects ?? 0) + 1;
      message.notice = t("notice.reconnecting", { seconds: decimal(event.delayMs / 1000), attempt: event.attempt, tries: event.tries });
      break;
    }
    case "paused":
      message.state = "retrying";
      message.notice = t("notice.offline");
      break;
    case "resumed":
      message.notice = t("notice.online");
      break;
  }
}

/** The run ended: set the final state. The text received so far always stays. */
export function finishMessage(message: ChatMessage, outcome: RunOutcome, now: number): void {
  message.endedAt = now;
  endReasoning(message, now);
  message.notice = undefined;
  switch (outcome.kind) {
    case "done":
      message.state = "done";
      message.error = undefined;
      message.interrupted = false;
      break;
    case "stopped":
      message.state = "stopped";
      message.stoppedElsewhere = outcome.by === "elsewhere";
      break;
    case "failed":
      message.state = "failed";
      message.error = outcome.error.toJSON();
      message.interrupted = outcome.interrupted;
      break;
  }
}

/** A running answer whose stream the gateway may still hold (it can be followed again). */
export function resumable(message: ChatMessage): boolean {
  return isRunning(message) && !!message.streamId && message.mode !== "complete";
}

/**
 * A message persisted while its run was going, found with no run behind it and no stream to
 * follow again (a non-streaming request, or one closed before the gateway named its stream).
 */
export function orphaned(message: ChatMessage): ChatMessage {
  if (!isRunning(message) || resumable(message)) return message;
  return {
    ...message,
    state: "failed",
    interrupted: message.content !== "" || !!message.reasoning,
    notice: undefined,
    error: {
      message: "The page was closed while this answer was streaming.",
      status: 0,
      code: "interrupted",
      type: null,
      retryAfter: null,
    },
  };
}

export interface LiveStats {
  ttftMs: number | null;
  elapsedMs: number;
  tokensPerS: number | null;
  /** True when tokens/s is from the gateway's usage, not an estimate from chunks. */
  exact: boolean;
}

/** Time to first token, elapsed time and tokens/s, at `now` (live) or at the end. */
export function statsOf(message: ChatMessage, now: number): LiveStats {
  const start = message.startedAt ?? message.createdAt;
  const end = message.endedAt ?? now;
  const ttftMs = message.firstTokenAt !== undefined ? message.firstTokenAt - start : null;
  let tokensPerS: number | null = null;
  let exact = false;
  if (message.firstTokenAt !== undefined) {
    const seconds = (end - message.firstTokenAt) / 1000;
    const tokens = message.usage?.completion_tokens;
    if (tokens !== undefined && message.endedAt !== undefined) {
      exact = true;
      tokensPerS = seconds > 0.05 ? tokens / seconds : null;
    } else if (seconds > 0.25 && (message.outputChunks ?? 0) > 1) {
      tokensPerS = ((message.outputChunks ?? 1) - 1) / seconds;
    }
  }
  return { ttftMs, elapsedMs: Math.max(0, end - start), tokensPerS, exact };
}
