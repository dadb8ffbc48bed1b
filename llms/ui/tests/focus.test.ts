/** The Settings panel's focus trap (issue 15): Tab cycles inside an open panel. */
import { afterEach, describe, expect, it } from "vitest";
import { focusables, trapTab } from "../src/lib/focus";

function panel(): HTMLElement {
  document.body.innerHTML = `
    <button id="outside">outside</button>
    <section id="p">
      <button id="a">a</button>
      <input id="b" />
      <button id="c" disabled>c</button>
      <div hidden><button id="d">d</button></div>
      <a id="e" href="/x">e</a>
    </section>`;
  return document.getElementById("p")!;
}

function tab(shift = false): KeyboardEvent {
  return new KeyboardEvent("keydown", { key: "Tab", shiftKey: shift, cancelable: true });
}

afterEach(() => (document.body.innerHTML = ""));

describe("focus trap", () => {
  it("lists the enabled, shown controls in order", () => {
    expect(focusables(panel()).map((el) => el.id)).toEqual(["a", "b", "e"]);
  });

  it("wraps Tab from the last control to the first, and Shift+Tab back", () => {
    const p = panel();
    document.getElementById("e")!.focus();
    const forward = tab();
    expect(trapTab(forward, p)).toBe(true);
    expect(forward.defaultPrevented).toBe(true);
    expect(document.activeElement?.id).toBe("a");
    expect(trapTab(tab(true), p)).toBe(true);
    expect(document.activeElement?.id).toBe("e");
  });

  it("lets Tab move normally between the controls inside", () => {
    const p = panel();
    document.getElementById("a")!.focus();
    const event = tab();
    expect(trapTab(event, p)).toBe(false);
    expect(event.defaultPrevented).toBe(false);
  });

  it("brings focus from outside back in, and ignores other keys", () => {
    const p = panel();
    document.getElementById("outside")!.focus();
    expect(trapTab(tab(), p)).toBe(true);
    expect(document.activeElement?.id).toBe("a");
    expect(trapTab(new KeyboardEvent("keydown", { key: "Enter" }), p)).toBe(false);
  });
});
