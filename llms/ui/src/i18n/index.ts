/**
 * The UI's words in English and German (vue-i18n, Composition API). The language follows the
 * browser (navigator.languages: the first de* or en* wins, else English) unless the user picked
 * one in Settings; <html lang> follows it. Components call `useI18n().t`; libraries and stores
 * call `t` from here, and `locale()` gives the BCP 47 tag for Intl formats.
 */
import { watch } from "vue";
import { createI18n } from "vue-i18n";
import type { LanguageChoice, Settings } from "../stores/settings";
import { de } from "./de";
import { en, type Messages } from "./en";

export type Language = "en" | "de";
export type { LanguageChoice } from "../stores/settings";
export const LANGUAGES: readonly Language[] = ["en", "de"];

/** The browser's preferred language among ours: the first de* or en* in the list, else English. */
export function pickLanguage(preferred: readonly string[] | undefined): Language {
  for (const tag of preferred ?? []) {
    const base = tag.toLowerCase().split("-")[0];
    if (base === "de" || base === "en") return base;
  }
  return "en";
}

export function browserLanguages(): readonly string[] {
  if (typeof navigator === "undefined") return [];
  return navigator.languages?.length ? navigator.languages : [navigator.language];
}

export function effectiveLanguage(choice: LanguageChoice, preferred: readonly string[] = browserLanguages()): Language {
  return choice === "auto" ? pickLanguage(preferred) : choice;
}

export const i18n = createI18n<[Messages], Language, false>({
  legacy: false,
  locale: pickLanguage(browserLanguages()),
  fallbackLocale: "en",
  messages: { en, de },
  missingWarn: false,
  fallbackWarn: false,
});

/** Translate outside a component (stores, libraries): the same messages, the current language. */
export const t = i18n.global.t;

/** The current language, for Intl (dates, numbers). */
export function locale(): Language {
  return i18n.global.locale.value;
}

export function setLanguage(language: Language): void {
  i18n.global.locale.value = language;
  if (typeof document !== "undefined") document.documentElement.lang = language;
}

/** Keep the UI's language (and <html lang>) in step with the setting. */
export function followLanguage(settings: Pick<Settings, "language">): void {
  setLanguage(effectiveLanguage(settings.language));
  watch(
    () => settings.language,
    (choice) => setLanguage(effectiveLanguage(choice)),
  );
}
