/** The user's settings, persisted in localStorage: generation parameters, streaming, theme. */
import { reactive, watch } from "vue";

export type ThemeChoice = "system" | "light" | "dark";
/** "auto": the browser's language (navigator.languages), else the one picked in Settings. */
export type LanguageChoice = "auto" | "en" | "de";

export interface Settings {
  /** null: the model's default. */
  temperature: number | null;
  /** null: the model's default. */
  maxTokens: number | null;
  streaming: boolean;
  theme: ThemeChoice;
  /** Ask the chat's model for a short title after a new chat's first answer (lib/titles.ts). */
  autoTitles: boolean;
  language: LanguageChoice;
  /** The last model picked. */
  model: string | null;
}

export const SETTINGS_KEY = "llms.settings";
/**
 * Version 2: the temperature defaults to the model's own. Version 1 (no `v`) saved 0.7 as the
 * default whether or not the user chose it, so a saved 0.7 without a version reads as unset.
 */
export const SETTINGS_VERSION = 2;
const OLD_DEFAULT_TEMPERATURE = 0.7;

export const DEFAULTS: Readonly<Settings> = Object.freeze({
  temperature: null,
  maxTokens: null,
  streaming: true,
  theme: "system",
  autoTitles: true,
  language: "auto",
  model: null,
});

function numberOrNull(value: unknown, min: number, max: number): number | null | undefined {
  if (value === null) return null;
  if (typeof value !== "number" || !Number.isFinite(value)) return undefined;
  return Math.min(max, Math.max(min, value));
}

/** Settings from storage; anything missing or malformed takes its default. */
export function loadSettings(storage: Pick<Storage, "getItem"> | null): Settings {
  const settings: Settings = { ...DEFAULTS };
  let raw: unknown = null;
  try {
    raw = JSON.parse(storage?.getItem(SETTINGS_KEY) ?? "null");
  } catch {
    raw = null;
  }
  if (typeof raw !== "object" || raw === null) return settings;
  const saved = raw as Record<string, unknown>;
  const temperature = numberOrNull(saved.temperature, 0, 2);
  const unversioned = saved.v === undefined;
  if (temperature !== undefined && !(unversioned && temperature === OLD_DEFAULT_TEMPERATURE)) {
    settings.temperature = temperature;
  }
  const maxTokens = numberOrNull(saved.maxTokens, 1, 1_000_000);
  if (maxTokens !== undefined) settings.maxTokens = maxTokens === null ? null : Math.round(maxTokens);
  if (typeof saved.streaming === "boolean") settings.streaming = saved.streaming;
  if (typeof saved.autoTitles === "boolean") settings.autoTitles = saved.autoTitles;
  if (saved.theme === "light" || saved.theme === "dark" || saved.theme === "system") settings.theme = saved.theme;
  if (saved.language === "auto" || saved.language === "en" || saved.language === "de") settings.language = saved.language;
  if (typeof saved.model === "string" && saved.model) settings.model = saved.model;
  return settings;
}

export function saveSettings(storage: Pick<Storage, "setItem"> | null, settings: Settings): void {
  try {
    storage?.setItem(SETTINGS_KEY, JSON.stringify({ v: SETTINGS_VERSION, ...settings }));
  } catch {
    // Storage full or disabled (private mode): settings last for this page only.
  }
}

export function browserStorage(): Storage | null {
  try {
    return typeof localStorage === "undefined" ? null : localStorage;
  } catch {
    return null;
  }
}

/** Reactive settings that save themselves on every change. */
export function createSettings(storage: Storage | null = browserStorage()): Settings {
  const settings = reactive(loadSettings(storage));
  watch(
    () => ({ ...settings }),
    (value) => saveSettings(storage, value),
    { flush: "sync" },
  );
  return settings;
}
