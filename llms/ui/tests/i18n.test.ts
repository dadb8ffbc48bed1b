import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { nextTick, reactive } from "vue";
import { de } from "../src/i18n/de";
import { en } from "../src/i18n/en";
import { effectiveLanguage, followLanguage, i18n, pickLanguage, t } from "../src/i18n";
import type { LanguageChoice } from "../src/stores/settings";

type Tree = { [key: string]: string | Tree };

function leaves(tree: Tree, prefix = ""): Map<string, string> {
  const out = new Map<string, string>();
  for (const [key, value] of Object.entries(tree)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (typeof value === "string") out.set(path, value);
    else for (const [k, v] of leaves(value, path)) out.set(k, v);
  }
  return out;
}

const placeholders = (message: string): string[] => [...message.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

describe("messages", () => {
  const english = leaves(en as Tree);
  const german = leaves(de as Tree);

  it("German has every English key and no other", () => {
    expect([...german.keys()].sort()).toEqual([...english.keys()].sort());
  });

  it("German uses the same placeholders and plural forms as English", () => {
    for (const [key, message] of english) {
      const other = german.get(key) ?? "";
      expect(placeholders(other), key).toEqual(placeholders(message));
      expect(other.split(" | ").length, key).toBe(message.split(" | ").length);
      expect(other.trim(), key).not.toBe("");
    }
  });

  it("every message compiles and fills its placeholders in both languages", () => {
    for (const language of ["en", "de"] as const) {
      i18n.global.locale.value = language;
      for (const [key, message] of english) {
        const params = Object.fromEntries(placeholders(message).map((name) => [name, `<${name}>`]));
        // A plural (`one | many`) is asked for its "many" form, where the count appears.
        const text = message.includes(" | ") ? t(key, params, 2) : t(key, params);
        expect(text, `${language} ${key}`).not.toBe(key);
        expect(text, `${language} ${key}`).not.toMatch(/\{\w+\}/);
        for (const name of placeholders(message)) expect(text, `${language} ${key}`).toContain(`<${name}>`);
      }
    }
    i18n.global.locale.value = "en";
  });
});

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return /\.(ts|vue)$/.test(name) ? [path] : [];
  });
}

describe("the code's keys", () => {
  it("every literal key given to t() or <i18n-t> is in the messages", () => {
    const english = leaves(en as Tree);
    const used = new Set<string>();
    for (const path of sources(join(__dirname, "../src"))) {
      const text = readFileSync(path, "utf8");
      for (const m of text.matchAll(/\bt\(\s*["'`]([\w.]+)["'`]/g)) used.add(m[1]!);
      for (const m of text.matchAll(/keypath="([\w.]+)"/g)) used.add(m[1]!);
    }
    expect(used.size).toBeGreaterThan(100);
    expect([...used].filter((key) => !english.has(key))).toEqual([]);
  });
});

describe("language choice", () => {
  it("follows the first German or English entry of navigator.languages, else English", () => {
    expect(pickLanguage(["de-DE", "en-US"])).toBe("de");
    expect(pickLanguage(["de-AT"])).toBe("de");
    expect(pickLanguage(["fr-FR", "de-CH", "en"])).toBe("de");
    expect(pickLanguage(["en-GB", "de-DE"])).toBe("en");
    expect(pickLanguage(["fr-FR", "ja"])).toBe("en");
    expect(pickLanguage([])).toBe("en");
    expect(pickLanguage(undefined)).toBe("en");
  });

  it("a choice in Settings wins over the browser", () => {
    expect(effectiveLanguage("en", ["de-DE"])).toBe("en");
    expect(effectiveLanguage("de", ["en-US"])).toBe("de");
    expect(effectiveLanguage("auto", ["de-DE"])).toBe("de");
  });

  it("switches the messages and <html lang> live", async () => {
    const settings = reactive({ language: "de" as LanguageChoice });
    followLanguage(settings);
    expect(document.documentElement.lang).toBe("de");
    expect(t("settings.title")).toBe("Einstellungen");
    settings.language = "en";
    await nextTick();
    expect(document.documentElement.lang).toBe("en");
    expect(t("settings.title")).toBe("Settings");
  });
});
