/**
 * Export and import of chats: JSON (every chat, whole, to be imported here or in another
 * browser) and Markdown (one chat, to read or paste elsewhere).
 */
import { inlinedText, validAttachments } from "./attachments";
import { RUNNING_STATES, type ChatMessage } from "../stores/message";
import type { Thread } from "../stores/db";
import { metaOf, titleFrom } from "../stores/threads";
import { t } from "../i18n";

export const EXPORT_FORMAT = "llms-chats";
export const EXPORT_VERSION = 1;

export class ImportError extends Error {}

export function exportJson(threads: Thread[], now: number = Date.now()): string {
  const envelope = { format: EXPORT_FORMAT, version: EXPORT_VERSION, exportedAt: new Date(now).toISOString(), threads };
  return JSON.stringify(envelope, null, 2) + "\n";
}

function day(ms: number): string {
  return new Date(ms).toISOString().slice(0, 16).replace("T", " ");
}

/** One chat as Markdown: its title, the system prompt, then each turn under a heading. */
export function exportMarkdown(thread: Thread): string {
  const out = [`# ${thread.title}`, ""];
  const model = thread.model ?? thread.messages.find((m) => m.model)?.model;
  out.push(`_${[model, day(thread.createdAt) + " UTC"].filter(Boolean).join(" · ")}_`, "");
  if (thread.systemPrompt.trim()) out.push("## System", "", thread.systemPrompt.trim(), "");
  for (const message of thread.messages) {
    const who = message.role === "user" ? "You" : `Assistant${message.model ? ` (${message.model})` : ""}`;
    out.push(`## ${who}`, "");
    if (message.reasoning?.trim()) {
      out.push("<details><summary>Reasoning</summary>", "", message.reasoning.trim(), "", "</details>", "");
    }
    const text = inlinedText(message.content, message.attachments);
    out.push(text || (message.attachments?.length ? "" : "_(no text)_"));
    for (const image of message.attachments ?? []) {
      if (image.kind === "image") out.push(`_[image: ${image.name}${image.width ? `, ${image.width}×${image.height}` : ""}]_`);
    }
    out.push("");
  }
  return out.join("\n");
}

/** A file name from a title: letters, digits and dashes. */
export function fileNameOf(title: string, extension: string): string {
  const stem = title
    .normalize("NFKD")
    .replace(/[^\w\s-]/g, "")
    .trim()
    .replace(/[\s_]+/g, "-")
    .slice(0, 60)
    .toLowerCase();
  return `${stem || "chat"}.${extension}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function importMessage(raw: unknown, where: string, now: number, makeId: () => string): ChatMessage {
  if (!isRecord(raw)) throw new ImportError(`${where} is not a message object.`);
  const { role, content } = raw;
  if (role !== "user" && role !== "assistant") throw new ImportError(`${where} has no role "user" or "assistant".`);
  if (typeof content !== "string") throw new ImportError(`${where} has no text content.`);
  const message = { ...raw, id: typeof raw.id === "string" && raw.id ? raw.id : makeId(), role, content } as ChatMessage;
  if (typeof message.createdAt !== "number") message.createdAt = now;
  // An answer that was still running when exported is not running here: it stopped.
  if (message.state && RUNNING_STATES.has(message.state)) message.state = "stopped";
  delete message.streamId;
  delete message.lastEventId;
  delete message.notice;
  const attachments = validAttachments(raw.attachments);
  if (attachments) message.attachments = attachments;
  else delete message.attachments;
  return message;
}

/**
 * The chats in an exported file (this UI's JSON, or a bare list of chats). Each gets a new id,
 * so importing the same file twice keeps both copies and never overwrites a chat.
 */
export function parseImport(text: string, now: number, makeId: () => string): Thread[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new ImportError(t("transfer.notJson"));
  }
  const list = isRecord(data) && Array.isArray(data.threads) ? data.threads : Array.isArray(data) ? data : isRecord(data) && Array.isArray(data.messages) ? [data] : null;
  if (list === null) throw new ImportError(t("transfer.noChats"));
  return list.map((raw: unknown, i: number) => {
    const where = `Chat ${i + 1}`;
    if (!isRecord(raw) || !Array.isArray(raw.messages)) throw new ImportError(`${where} has no messages.`);
    const messages = raw.messages.map((m: unknown, j: number) => importMessage(m, `${where}, message ${j + 1},`, now, makeId));
    const firstUser = messages.find((m) => m.role === "user")?.content ?? "";
    const title = typeof raw.title === "string" && raw.title.trim() ? raw.title.trim().slice(0, 120) : titleFrom(firstUser);
    const createdAt = typeof raw.createdAt === "number" ? raw.createdAt : now;
    const thread = {
      id: makeId(),
      title,
      titleEdited: raw.titleEdited === true,
      // Imported chats are never titled by a model here; a model's title in the file stays.
      autoTitle: raw.autoTitle === "done" ? "done" : "asked",
      systemPrompt: typeof raw.systemPrompt === "string" ? raw.systemPrompt : "",
      model: typeof raw.model === "string" ? raw.model : null,
      createdAt,
      updatedAt: typeof raw.updatedAt === "number" ? raw.updatedAt : createdAt,
      messages,
    } as Thread;
    return { ...metaOf(thread), messages };
  });
}
