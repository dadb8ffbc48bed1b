/**
 * Attachments of a user message: images (sent as OpenAI `image_url` parts with data URLs) and
 * text files (inlined into the message's text as a fenced block under the file's name).
 *
 * They are plain data (the data URL or the text), so a thread keeps them in IndexedDB, in an
 * exported JSON file and in a message's versions like the rest of the message.
 */
import type { ContentPart, ModelCard } from "../api/types";
import { locale, t } from "../i18n";

export interface ImageAttachment {
  kind: "image";
  name: string;
  /** The MIME type of `dataUrl` (after any downscaling). */
  type: string;
  /** Bytes of the image as sent. */
  size: number;
  dataUrl: string;
  width?: number;
  height?: number;
}

export interface TextAttachment {
  kind: "text";
  name: string;
  size: number;
  text: string;
}

export type Attachment = ImageAttachment | TextAttachment;

/** A picked image larger than this is refused (before any downscaling). */
export const MAX_IMAGE_INPUT_BYTES = 20 * 1024 * 1024;
/** What is sent of an image: at most this many pixels a side, and this many bytes. */
export const MAX_IMAGE_SIDE = 2048;
export const MAX_IMAGE_BYTES = 4 * 1024 * 1024;
export const MAX_TEXT_BYTES = 256 * 1024;
export const MAX_ATTACHMENTS = 10;

/** Image types every provider the gateway speaks takes as they are. */
const SENT_AS_IS = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

// Fence languages of common extensions (the rest use the extension itself).
const LANGUAGES: Record<string, string> = {
  py: "python",
  js: "javascript",
  mjs: "javascript",
  cjs: "javascript",
  ts: "typescript",
  tsx: "tsx",
  jsx: "jsx",
  md: "markdown",
  markdown: "markdown",
  yml: "yaml",
  sh: "bash",
  zsh: "bash",
  rs: "rust",
  rb: "ruby",
  kt: "kotlin",
  cs: "csharp",
  h: "c",
  hpp: "cpp",
  cc: "cpp",
  txt: "",
  log: "",
  text: "",
};

// Text files known by their whole name (no extension); the first two are also fence languages.
const NAMED = ["dockerfile", "makefile", "readme", "license", "changelog", "authors", "notice"];

const TEXT_EXTENSIONS = new Set([
  ...Object.keys(LANGUAGES),
  ...["json", "jsonl", "csv", "tsv", "xml", "yaml", "toml", "ini", "cfg", "conf", "env", "properties"],
  ...["html", "htm", "css", "scss", "less", "vue", "svelte", "sql", "graphql", "proto"],
  ...["bash", "ps1", "bat", "go", "java", "c", "cpp", "swift", "php", "pl", "lua", "r", "scala"],
  ...["dart", "ex", "exs", "erl", "hs", "ml", "clj", "jl", "tex", "rst", "adoc", "org"],
  ...["diff", "patch", "srt", "vtt", "gitignore", "tf", "gradle"],
  ...NAMED,
]);

/** What the file picker offers: images and the text files above. */
export const ACCEPT = ["image/*", "text/*", ...[...TEXT_EXTENSIONS].map((e) => `.${e}`)].join(",");

const TEXT_TYPES = /^(text\/|application\/(json|ld\+json|xml|javascript|x-javascript|typescript|x-yaml|yaml|toml|x-sh|sql|x-tex|x-ndjson))/;

export class AttachmentError extends Error {}

/** The extension of a file name, lower case ("" if none; a dotfile's name is its extension). */
export function extensionOf(name: string): string {
  const base = name.split(/[\\/]/).pop() ?? name;
  const dot = base.lastIndexOf(".");
  return (dot === -1 ? base : base.slice(dot + 1)).toLowerCase();
}

export function isImageFile(file: { type: string }): boolean {
  return file.type.startsWith("image/");
}

export function isTextFile(file: { name: string; type: string }): boolean {
  return TEXT_TYPES.test(file.type) || TEXT_EXTENSIONS.has(extensionOf(file.name));
}

/** A byte count in words: "812 B", "14.2 KB", "3.1 MB". */
export function sizeText(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const one = (n: number): string => n.toLocaleString(locale(), { maximumFractionDigits: 1 });
  if (bytes < 1024 * 1024) return `${one(bytes / 1024)} KB`;
  return `${one(bytes / 1024 / 1024)} MB`;
}

/** The size to draw an image at so that neither side exceeds `max` (its own size if it fits). */
export function fitWithin(width: number, height: number, max: number = MAX_IMAGE_SIDE): { width: number; height: number } {
  const scale = Math.min(1, max / Math.max(width, height, 1));
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/** Bytes of what a base64 data URL holds. */
export function dataUrlBytes(url: string): number {
  const base64 = url.slice(url.indexOf(",") + 1);
  const padding = base64.endsWith("==") ? 2 : base64.endsWith("=") ? 1 : 0;
  return Math.floor((base64.length * 3) / 4) - padding;
}

/** A fence that no run of backticks in `text` closes early. */
export function fenceFor(text: string): string {
  let longest = 0;
  for (const run of text.match(/`+/g) ?? []) longest = Math.max(longest, run.length);
  return "`".repeat(Math.max(3, longest + 1));
}

/** A text file as the model reads it: its name, then its text in a fenced block. */
export function textBlock(file: TextAttachment): string {
  const extension = extensionOf(file.name);
  const named = !file.name.includes(".");
  const fenced = named ? ["dockerfile", "makefile"].includes(extension) : true;
  const language = LANGUAGES[extension] ?? (fenced ? extension : "");
  const fence = fenceFor(file.text);
  const body = file.text.endsWith("\n") ? file.text : `${file.text}\n`;
  return `${file.name}:\n${fence}${language}\n${body}${fence}`;
}

/** A user message's text with its text files inlined after it. */
export function inlinedText(content: string, attachments: readonly Attachment[] = []): string {
  const blocks = attachments.filter((a): a is TextAttachment => a.kind === "text").map(textBlock);
  return [content.trim(), ...blocks].filter(Boolean).join("\n\n");
}

/** A user message for the API: a string, or text and image parts when it has images. */
export function wireContent(content: string, attachments: readonly Attachment[] = []): string | ContentPart[] {
  const text = inlinedText(content, attachments);
  const images = attachments.filter((a): a is ImageAttachment => a.kind === "image");
  if (!images.length) return text;
  const parts: ContentPart[] = text ? [{ type: "text", text }] : [];
  for (const image of images) parts.push({ type: "image_url", image_url: { url: image.dataUrl } });
  return parts;
}

/**
 * Whether a model takes images, as far as `GET /v1/models` tells: false when it is known not
 * to (an embedding model, or a card listing its input modalities without images), null when
 * nothing is known (then the image is sent, and a refusal is shown as the gateway words it).
 */
export function takesImages(card: ModelCard | undefined): boolean | null {
  if (!card) return null;
  if (card.type === "embedding") return false;
  const modalities = card.input_modalities ?? card.architecture?.input_modalities;
  if (Array.isArray(modalities)) return modalities.includes("image");
  if (Array.isArray(card.capabilities)) return card.capabilities.includes("vision");
  return null;
}

/** Said before sending an image to a model known not to take images. */
export function imagesRefused(model: string): string {
  return t("attachments.modelRefuses", { model });
}

/** Why a file cannot be attached, in words, or null when it can. */
export function refusal(file: { name: string; type: string; size: number }): string | null {
  if (isImageFile(file)) {
    if (file.size > MAX_IMAGE_INPUT_BYTES) {
      return t("attachments.imageTooBig", { name: file.name, size: sizeText(file.size), max: sizeText(MAX_IMAGE_INPUT_BYTES) });
    }
    return null;
  }
  if (isTextFile(file)) {
    if (file.size > MAX_TEXT_BYTES) {
      return t("attachments.textTooBig", { name: file.name, size: sizeText(file.size), max: sizeText(MAX_TEXT_BYTES) });
    }
    return null;
  }
  return t("attachments.wrongKind", { name: file.name });
}

function readAsDataUrl(blob: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error ?? new Error("read failed"));
    reader.readAsDataURL(blob);
  });
}

function canvasBlob(canvas: HTMLCanvasElement, type: string, quality?: number): Promise<Blob | null> {
  return new Promise((resolve) => canvas.toBlob(resolve, type, quality));
}

/** An image file as sent: as it is when small enough, else redrawn at most 2048 px a side. */
async function readImage(file: File): Promise<ImageAttachment> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    throw new AttachmentError(t("attachments.notImage", { name: file.name }));
  }
  const { width, height } = bitmap;
  const fit = fitWithin(width, height);
  if (SENT_AS_IS.has(file.type) && fit.width === width && file.size <= MAX_IMAGE_BYTES) {
    bitmap.close();
    const dataUrl = await readAsDataUrl(file);
    return { kind: "image", name: file.name, type: file.type, size: file.size, dataUrl, width, height };
  }
  const canvas = document.createElement("canvas");
  canvas.width = fit.width;
  canvas.height = fit.height;
  const context = canvas.getContext("2d");
  if (!context) throw new AttachmentError(t("attachments.noCanvas", { name: file.name }));
  // PNG keeps transparency and sharp edges; a photo (or a PNG too big as PNG) becomes JPEG.
  let blob = file.type === "image/png" ? await draw(context, canvas, bitmap, "image/png") : null;
  if (!blob || blob.size > MAX_IMAGE_BYTES) blob = await draw(context, canvas, bitmap, "image/jpeg", 0.88);
  bitmap.close();
  if (!blob || blob.size > MAX_IMAGE_BYTES) {
    throw new AttachmentError(t("attachments.tooLarge", { name: file.name }));
  }
  const dataUrl = await readAsDataUrl(blob);
  return { kind: "image", name: file.name, type: blob.type, size: blob.size, dataUrl, ...fit };
}

async function draw(
  context: CanvasRenderingContext2D,
  canvas: HTMLCanvasElement,
  bitmap: ImageBitmap,
  type: string,
  quality?: number,
): Promise<Blob | null> {
  context.clearRect(0, 0, canvas.width, canvas.height);
  if (type === "image/jpeg") {
    // JPEG has no transparency: what was transparent is white, not black.
    context.fillStyle = "#fff";
    context.fillRect(0, 0, canvas.width, canvas.height);
  }
  context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return canvasBlob(canvas, type, quality);
}

async function readText(file: File): Promise<TextAttachment> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  if (bytes.includes(0)) throw new AttachmentError(t("attachments.notText", { name: file.name }));
  const text = new TextDecoder("utf-8").decode(bytes).replace(/^\uFEFF/, "");
  return { kind: "text", name: file.name, size: file.size, text };
}

/** A file as an attachment; an AttachmentError says why it cannot be one. */
export async function readAttachment(file: File): Promise<Attachment> {
  const why = refusal(file);
  if (why) throw new AttachmentError(why);
  return isImageFile(file) ? readImage(file) : readText(file);
}

/** The attachments of an imported message that are well formed (others are dropped). */
export function validAttachments(raw: unknown): Attachment[] | undefined {
  if (!Array.isArray(raw)) return undefined;
  const out = raw.filter((a: unknown): a is Attachment => {
    if (typeof a !== "object" || a === null) return false;
    const item = a as Record<string, unknown>;
    if (typeof item.name !== "string" || typeof item.size !== "number") return false;
    if (item.kind === "image") return typeof item.dataUrl === "string" && item.dataUrl.startsWith("data:image/");
    return item.kind === "text" && typeof item.text === "string";
  });
  return out.length ? out : undefined;
}

/** A question long enough to be shown collapsed: more than 12 lines or 1,000 characters. */
export function isLongQuestion(text: string): boolean {
  if (text.length > 1000) return true;
  let lines = 1;
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) if (++lines > 12) return true;
  return false;
}
