/**
 * Keyboard shortcuts (those of ChatGPT, so hands already know them). Ctrl stands for ⌘ on a Mac.
 * Escape, which stops an answer, is handled where it was (App.vue).
 */
import { reactive } from "vue";

export type ShortcutAction = "new-chat" | "focus-composer" | "copy-last-answer" | "show-shortcuts";

export interface Shortcut {
  action: ShortcutAction;
  keys: string[];
  /** Its name's message key under `shortcuts.` (i18n/en.ts). */
  label: "newChat" | "focusComposer" | "copyLastAnswer" | "showShortcuts";
}

export const SHORTCUTS: readonly Shortcut[] = [
  { action: "new-chat", keys: ["Ctrl", "Shift", "O"], label: "newChat" },
  { action: "focus-composer", keys: ["Shift", "Esc"], label: "focusComposer" },
  { action: "copy-last-answer", keys: ["Ctrl", "Shift", "C"], label: "copyLastAnswer" },
  { action: "show-shortcuts", keys: ["Ctrl", "/"], label: "showShortcuts" },
];

export function isMac(platform: string = typeof navigator === "undefined" ? "" : navigator.platform): boolean {
  return /mac|iphone|ipad/i.test(platform);
}

/** The keys as shown on this computer (⌘ for Ctrl on a Mac). */
export function keysFor(shortcut: Shortcut, mac: boolean = isMac()): string[] {
  return shortcut.keys.map((key) => (mac && key === "Ctrl" ? "⌘" : key));
}

type KeyLike = Pick<KeyboardEvent, "key" | "code" | "ctrlKey" | "metaKey" | "shiftKey" | "altKey">;

/** The shortcut a key press means, if any. */
export function shortcutOf(event: KeyLike, mac: boolean = isMac()): ShortcutAction | null {
  if (event.altKey) return null;
  const ctrl = mac ? event.metaKey && !event.ctrlKey : event.ctrlKey && !event.metaKey;
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  if (ctrl && event.shiftKey && (key === "o" || event.code === "KeyO")) return "new-chat";
  if (ctrl && event.shiftKey && (key === "c" || event.code === "KeyC")) return "copy-last-answer";
  if (ctrl && !event.shiftKey && (key === "/" || event.code === "Slash")) return "show-shortcuts";
  if (!ctrl && !event.ctrlKey && !event.metaKey && event.shiftKey && key === "Escape") return "focus-composer";
  return null;
}

/** Whether the shortcuts' help dialog is open (opened by Ctrl+/ or the sidebar's button). */
export const shortcutsHelp = reactive({ open: false });
