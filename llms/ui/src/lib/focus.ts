/**
 * Keyboard focus for panels that float over the page (the Settings panel): Tab and Shift+Tab
 * cycle inside it while it is open, and focus goes back where it came from when it closes.
 */

const FOCUSABLE = [
  "a[href]",
  "button:not([disabled])",
  "input:not([disabled]):not([type='hidden'])",
  "select:not([disabled])",
  "textarea:not([disabled])",
  "[tabindex]:not([tabindex='-1'])",
].join(",");

/** The elements of `container` that Tab stops at, in document order. */
export function focusables(container: Element): HTMLElement[] {
  return Array.from(container.querySelectorAll<HTMLElement>(FOCUSABLE)).filter(
    (el) => !el.closest("[hidden], [inert]") && el.getAttribute("aria-hidden") !== "true",
  );
}

/**
 * For a keydown inside `container`: a Tab off its last element goes to its first, a Shift+Tab
 * off its first to its last (and focus outside it is brought back in). True when it moved focus.
 */
export function trapTab(event: KeyboardEvent, container: Element): boolean {
  if (event.key !== "Tab" || event.altKey || event.ctrlKey || event.metaKey) return false;
  const items = focusables(container);
  if (items.length === 0) return false;
  const first = items[0]!;
  const last = items[items.length - 1]!;
  const active = document.activeElement;
  const inside = active instanceof Node && container.contains(active);
  let target: HTMLElement | null = null;
  if (event.shiftKey && (active === first || !inside)) target = last;
  else if (!event.shiftKey && (active === last || !inside)) target = first;
  if (!target) return false;
  event.preventDefault();
  target.focus();
  return true;
}
