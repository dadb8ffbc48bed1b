/**
 * Prompt presets: saved system prompts (applied to the open chat, or to the chat about to
 * start) and starter prompts (put in the message box), each a name and a text. Kept in
 * localStorage like the settings; until the user changes them, the built-ins.
 */
import { reactive } from "vue";

export type PresetKind = "system" | "starter";

export interface Preset {
  id: string;
  name: string;
  text: string;
  kind: PresetKind;
}

export const PRESETS_KEY = "llms.presets";
export const PRESETS_VERSION = 1;
export const NAME_MAX = 60;
export const TEXT_MAX = 20_000;

export const BUILTINS: readonly Readonly<Preset>[] = Object.freeze([
  {
    id: "builtin-concise",
    name: "Concise",
    kind: "system",
    text: "Answer briefly and directly. Use short paragraphs or lists; skip preambles, caveats and summaries unless asked.",
  },
  {
    id: "builtin-reviewer",
    name: "Code reviewer",
    kind: "system",
    text:
      "You are a careful senior software engineer. Review the code you are given for bugs, edge cases, " +
      "security and readability, most important first, and suggest concrete fixes with code.",
  },
  {
    id: "builtin-translator",
    name: "Translator (English ↔ German)",
    kind: "system",
    text:
      "Translate each message between English and German (into the other language), keeping its meaning, " +
      "tone and formatting. Reply with the translation only.",
  },
  {
    id: "builtin-summarise",
    name: "Summarise a text",
    kind: "starter",
    text: "Summarise the following text in five bullet points:\n\n",
  },
]);

/** Why a preset cannot be saved (an i18n key under `presets.`), or null. */
export type PresetProblem = "nameMissing" | "nameLong" | "textMissing" | "textLong";

export function problemOf(name: string, text: string): PresetProblem | null {
  if (!name.trim()) return "nameMissing";
  if (name.trim().length > NAME_MAX) return "nameLong";
  if (!text.trim()) return "textMissing";
  if (text.length > TEXT_MAX) return "textLong";
  return null;
}

function isPreset(value: unknown): value is Preset {
  if (typeof value !== "object" || value === null) return false;
  const p = value as Record<string, unknown>;
  return (
    typeof p.id === "string" &&
    !!p.id &&
    typeof p.name === "string" &&
    typeof p.text === "string" &&
    (p.kind === "system" || p.kind === "starter") &&
    problemOf(p.name, p.text) === null
  );
}

/** The saved presets; the built-ins when none were saved, or what was saved is unreadable. */
export function loadPresets(storage: Pick<Storage, "getItem"> | null): Preset[] {
  let raw: unknown = null;
  try {
    raw = JSON.parse(storage?.getItem(PRESETS_KEY) ?? "null");
  } catch {
    raw = null;
  }
  const list = typeof raw === "object" && raw !== null ? (raw as { presets?: unknown }).presets : undefined;
  if (!Array.isArray(list)) return BUILTINS.map((p) => ({ ...p }));
  const seen = new Set<string>();
  return list.filter((p): p is Preset => isPreset(p) && !seen.has(p.id) && !!seen.add(p.id)).map((p) => ({
    id: p.id,
    name: p.name.trim(),
    text: p.text,
    kind: p.kind,
  }));
}

export function savePresets(storage: Pick<Storage, "setItem"> | null, presets: readonly Preset[]): void {
  try {
    storage?.setItem(PRESETS_KEY, JSON.stringify({ v: PRESETS_VERSION, presets }));
  } catch {
    // Storage full or disabled: the presets last for this page only.
  }
}

function newPresetId(): string {
  if (typeof crypto !== "undefined" && "randomUUID" in crypto) return crypto.randomUUID();
  return `p-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** The presets, reactive, saved at each change and reloaded when another tab changes them. */
export class PresetStore {
  readonly state: { presets: Preset[] };

  constructor(
    private readonly storage: Storage | null,
    private readonly makeId: () => string = newPresetId,
  ) {
    this.state = reactive({ presets: loadPresets(storage) });
    if (typeof window !== "undefined") {
      window.addEventListener("storage", (event) => {
        if (event.key === PRESETS_KEY) this.state.presets = loadPresets(storage);
      });
    }
  }

  get(id: string): Preset | undefined {
    return this.state.presets.find((p) => p.id === id);
  }

  /** A new preset at the end of the list; null (nothing saved) when it is not valid. */
  add(name: string, text: string, kind: PresetKind): Preset | null {
    if (problemOf(name, text)) return null;
    const preset = { id: this.makeId(), name: name.trim(), text, kind };
    this.state.presets.push(preset);
    this.save();
    return preset;
  }

  update(id: string, change: Partial<Omit<Preset, "id">>): boolean {
    const preset = this.get(id);
    if (!preset) return false;
    const next = { ...preset, ...change };
    if (problemOf(next.name, next.text)) return false;
    Object.assign(preset, { ...next, name: next.name.trim() });
    this.save();
    return true;
  }

  remove(id: string): void {
    this.state.presets = this.state.presets.filter((p) => p.id !== id);
    this.save();
  }

  /** The built-ins back (the user's own presets stay). */
  restoreBuiltins(): void {
    const missing = BUILTINS.filter((b) => !this.get(b.id)).map((b) => ({ ...b }));
    this.state.presets.push(...missing);
    this.save();
  }

  private save(): void {
    savePresets(this.storage, this.state.presets);
  }
}

/** Where a system preset goes: the open chat, else the chat about to start. */
export interface PromptTarget {
  threads: {
    state: { current: { id: string; systemPrompt: string } | null };
    setSystemPrompt(id: string, text: string): Promise<void>;
  };
  chat: { state: { draftSystemPrompt: string } };
}

export function applySystemPrompt(target: PromptTarget, text: string): void {
  const thread = target.threads.state.current;
  if (!thread) {
    target.chat.state.draftSystemPrompt = text;
    return;
  }
  thread.systemPrompt = text;
  void target.threads.setSystemPrompt(thread.id, text).catch(() => undefined);
}

const BUILTIN_NAMES: Record<string, string> = {
  "builtin-concise": "presets.builtinConcise",
  "builtin-reviewer": "presets.builtinReviewer",
  "builtin-translator": "presets.builtinTranslator",
  "builtin-summarise": "presets.builtinSummarise",
};

/** A preset's name as shown: a built-in's in the UI's language, unless the user renamed it. */
export function presetName(preset: Preset, translate: (key: string) => string): string {
  const builtin = BUILTINS.find((b) => b.id === preset.id);
  const key = BUILTIN_NAMES[preset.id];
  return builtin && key && builtin.name === preset.name ? translate(key) : preset.name;
}

// A built-in starter prompt becomes the user's own words in the message box, so it is written in
// the UI's language (system prompts are instructions to the model and stay as they are).
const BUILTIN_STARTER_TEXTS: Record<string, string> = {
  "builtin-summarise": "presets.builtinSummariseText",
};

/** A preset's text as applied: a built-in starter's in the UI's language, unless the user edited it. */
export function presetText(preset: Preset, translate: (key: string) => string): string {
  const builtin = BUILTINS.find((b) => b.id === preset.id);
  const key = BUILTIN_STARTER_TEXTS[preset.id];
  return builtin && key && builtin.text === preset.text ? `${translate(key)}\n\n` : preset.text;
}
