/** Keyboard shortcuts (issue 15): which key press means what, on a Mac and elsewhere. */
import { describe, expect, it } from "vitest";
import { SHORTCUTS, keysFor, shortcutOf } from "../src/lib/shortcuts";

const press = (key: string, mods: Partial<Record<"ctrlKey" | "metaKey" | "shiftKey" | "altKey", boolean>> = {}, code = "") => ({
  key,
  code,
  ctrlKey: false,
  metaKey: false,
  shiftKey: false,
  altKey: false,
  ...mods,
});

describe("shortcutOf", () => {
  it("reads Ctrl on Linux and Windows", () => {
    expect(shortcutOf(press("O", { ctrlKey: true, shiftKey: true }), false)).toBe("new-chat");
    expect(shortcutOf(press("C", { ctrlKey: true, shiftKey: true }), false)).toBe("copy-last-answer");
    expect(shortcutOf(press("/", { ctrlKey: true }), false)).toBe("show-shortcuts");
    expect(shortcutOf(press("Escape", { shiftKey: true }), false)).toBe("focus-composer");
  });

  it("reads ⌘ on a Mac, and Ctrl there means nothing", () => {
    expect(shortcutOf(press("o", { metaKey: true, shiftKey: true }), true)).toBe("new-chat");
    expect(shortcutOf(press("o", { ctrlKey: true, shiftKey: true }), true)).toBeNull();
  });

  it("goes by the key's place when a layout changes the character", () => {
    expect(shortcutOf(press("-", { ctrlKey: true }, "Slash"), false)).toBe("show-shortcuts");
  });

  it("leaves other presses alone", () => {
    expect(shortcutOf(press("c", { ctrlKey: true }), false)).toBeNull(); // plain copy
    expect(shortcutOf(press("Escape"), false)).toBeNull(); // stop, handled elsewhere
    expect(shortcutOf(press("O", { ctrlKey: true, shiftKey: true, altKey: true }), false)).toBeNull();
  });

  it("shows ⌘ for Ctrl on a Mac", () => {
    expect(keysFor(SHORTCUTS[0]!, true)).toEqual(["⌘", "Shift", "O"]);
    expect(keysFor(SHORTCUTS[0]!, false)).toEqual(["Ctrl", "Shift", "O"]);
  });
});
