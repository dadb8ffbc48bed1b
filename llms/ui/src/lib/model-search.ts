/**
 * The model picker's search: every word typed must appear in the model's id or its provider
 * (case-insensitive); ids that start with the first word come first, then the rest in the
 * gateway's order (by provider, then id).
 */
import type { ModelCard } from "../api/types";

export function searchModels(models: readonly ModelCard[], query: string): ModelCard[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  const ordered = [...models].sort(
    (a, b) => (a.owned_by || "").localeCompare(b.owned_by || "") || a.id.localeCompare(b.id),
  );
  if (words.length === 0) return ordered;
  const matches = ordered.filter((m) => {
    const hay = `${m.id} ${m.owned_by || ""}`.toLowerCase();
    return words.every((w) => hay.includes(w));
  });
  const first = words[0]!;
  const starts = matches.filter((m) => m.id.toLowerCase().startsWith(first));
  return [...starts, ...matches.filter((m) => !starts.includes(m))];
}

/** The option index after a key press in a list of `count` options (wrapping; -1 when empty). */
export function moveActive(index: number, key: string, count: number): number {
  if (count === 0) return -1;
  switch (key) {
    case "ArrowDown":
      return index < 0 ? 0 : (index + 1) % count;
    case "ArrowUp":
      return index <= 0 ? count - 1 : index - 1;
    case "Home":
      return 0;
    case "End":
      return count - 1;
    case "PageDown":
      return Math.min(count - 1, Math.max(0, index) + 10);
    case "PageUp":
      return Math.max(0, index - 10);
    default:
      return index;
  }
}
