import { nextTick } from "vue";
import { describe, expect, it } from "vitest";
import { AuthStore, KEY_STORAGE } from "../src/stores/auth";
import { DEFAULTS, SETTINGS_KEY, createSettings, loadSettings } from "../src/stores/settings";

class MemoryStorage implements Storage {
  private data = new Map<string, string>();
  get length(): number {
    return this.data.size;
  }
  clear(): void {
    this.data.clear();
  }
  getItem(key: string): string | null {
    return this.data.get(key) ?? null;
  }
  key(index: number): string | null {
    return [...this.data.keys()][index] ?? null;
  }
  removeItem(key: string): void {
    this.data.delete(key);
  }
  setItem(key: string, value: string): void {
    this.data.set(key, String(value));
  }
}

describe("settings", () => {
  it("start from the defaults", () => {
    expect(loadSettings(new MemoryStorage())).toEqual(DEFAULTS);
    expect(DEFAULTS.streaming).toBe(true);
  });

  it("persist every change and come back after a reload", async () => {
    const storage = new MemoryStorage();
    const settings = createSettings(storage);
    settings.temperature = 1.3;
    settings.maxTokens = 512;
    settings.streaming = false;
    settings.theme = "dark";
    settings.model = "gpt-4o-mini";
    await nextTick();
    const reloaded = createSettings(storage);
    expect({ ...reloaded }).toEqual({ temperature: 1.3, maxTokens: 512, streaming: false, theme: "dark", autoTitles: true, language: "auto", model: "gpt-4o-mini" });
    reloaded.maxTokens = null;
    reloaded.temperature = null;
    expect(loadSettings(storage)).toMatchObject({ maxTokens: null, temperature: null });
  });

  it("ignore malformed or out-of-range values", () => {
    const storage = new MemoryStorage();
    storage.setItem(SETTINGS_KEY, JSON.stringify({ temperature: 9, maxTokens: "lots", streaming: "yes", theme: "pink" }));
    expect(loadSettings(storage)).toEqual({ ...DEFAULTS, temperature: 2 });
    storage.setItem(SETTINGS_KEY, "{not json");
    expect(loadSettings(storage)).toEqual(DEFAULTS);
    expect(loadSettings(null)).toEqual(DEFAULTS);
  });
});

describe("the API key", () => {
  it("is asked for once for every waiting request, kept, and forgotten on demand", async () => {
    const storage = new MemoryStorage();
    const auth = new AuthStore(storage);
    expect(auth.key).toBeNull();
    const first = auth.ask("Missing API key.");
    const second = auth.ask("Missing API key.");
    expect(auth.state.asking).toBe(true);
    auth.submit("  sk-123  ");
    expect(await first).toBe("sk-123");
    expect(await second).toBe("sk-123");
    expect(auth.state.asking).toBe(false);
    expect(storage.getItem(KEY_STORAGE)).toBe("sk-123");
    expect(new AuthStore(storage).key).toBe("sk-123");
    auth.forget();
    expect(auth.key).toBeNull();
    expect(storage.getItem(KEY_STORAGE)).toBeNull();
  });

  it("resolves null when the user cancels", async () => {
    const auth = new AuthStore(new MemoryStorage());
    const asked = auth.ask("why");
    auth.cancel();
    expect(await asked).toBeNull();
  });
});
