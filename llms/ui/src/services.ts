/** The app's single instances, wired together (tests build their own). */
import { reactive } from "vue";
import { Gateway } from "./api/client";
import { AuthStore } from "./stores/auth";
import { ChatController } from "./stores/chat";
import { ModelsStore } from "./stores/models";
import { PresetStore } from "./lib/presets";
import { autoTitle } from "./lib/titles";
import { browserStorage, createSettings } from "./stores/settings";
import { ThreadStore } from "./stores/threads";

export const settings = createSettings();
export const auth = new AuthStore();
export const gateway = new Gateway({ apiKey: () => auth.key });
export const models = new ModelsStore(gateway, settings, auth);
export const threads = new ThreadStore();
// A key saved in Settings (or anywhere) reloads the model list, unless a load is asking for it.
auth.onKeyChange(() => {
  if (!models.state.loading) void models.load();
});
export const presets = new PresetStore(browserStorage());
// After a new chat's first answer, its model names it (unless turned off in Settings).
const titles = { gateway, threads, enabled: () => settings.autoTitles };
export const chat = new ChatController({
  gateway,
  threads,
  settings,
  auth,
  models,
  onAnswered: (thread, answer) => void autoTitle(titles, thread, answer),
});

/** Whether the gateway has the usage API (`GET /api/usage`); null until known. */
export const usageApi = reactive({ available: null as boolean | null });

export async function probeUsage(): Promise<void> {
  try {
    const report = await gateway.usage({ from: String(Math.floor(Date.now() / 1000) - 60) });
    usageApi.available = report !== null;
  } catch {
    // 401 before a key, 5xx…: try again later (the link stays hidden meanwhile).
    usageApi.available = false;
  }
}
