/** Light and dark themes: the system's choice unless the user picked one. */
import { watch } from "vue";
import type { Settings, ThemeChoice } from "../stores/settings";

const DARK = "(prefers-color-scheme: dark)";

export function systemTheme(): "light" | "dark" {
  return typeof matchMedia === "function" && matchMedia(DARK).matches ? "dark" : "light";
}

export function effectiveTheme(choice: ThemeChoice): "light" | "dark" {
  return choice === "system" ? systemTheme() : choice;
}

function apply(choice: ThemeChoice): void {
  const theme = effectiveTheme(choice);
  const root = document.documentElement;
  if (root.dataset.theme === theme) return;
  // Switch at once: colour transitions would fade each control separately.
  root.classList.add("theme-switching");
  root.dataset.theme = theme;
  root.style.colorScheme = theme;
  void root.offsetHeight; // apply the new colours before transitions come back
  requestAnimationFrame(() => root.classList.remove("theme-switching"));
}

/** Keep <html data-theme> in step with the setting and, for "system", with the OS. */
export function followTheme(settings: Settings): void {
  apply(settings.theme);
  watch(() => settings.theme, apply);
  if (typeof matchMedia === "function") {
    matchMedia(DARK).addEventListener("change", () => {
      if (settings.theme === "system") apply("system");
    });
  }
}
