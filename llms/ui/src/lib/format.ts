/** Numbers and times as the UI shows them. */

export function seconds(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(ms / 60_000);
  const s = Math.round((ms % 60_000) / 1000);
  return `${m} min ${s} s`;
}

export function integer(n: number): string {
  return n.toLocaleString("en-US");
}

export function compact(n: number): string {
  if (Math.abs(n) < 1000) return String(Math.round(n * 100) / 100);
  return new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 }).format(n);
}

/** "just now", "5 min ago", "yesterday", or a date. */
export function relativeTime(then: number, now: number = Date.now()): string {
  const diff = Math.max(0, now - then);
  if (diff < 45_000) return "just now";
  if (diff < 3_600_000) return `${Math.round(diff / 60_000)} min ago`;
  const date = new Date(then);
  const today = new Date(now);
  if (date.toDateString() === today.toDateString()) {
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  const yesterday = new Date(now - 86_400_000);
  if (date.toDateString() === yesterday.toDateString()) return "yesterday";
  return date.toLocaleDateString([], { month: "short", day: "numeric" });
}

/** Section of the thread list a time falls in. */
export function dayGroup(then: number, now: number = Date.now()): string {
  const startOfToday = new Date(now);
  startOfToday.setHours(0, 0, 0, 0);
  const t = startOfToday.getTime();
  if (then >= t) return "Today";
  if (then >= t - 86_400_000) return "Yesterday";
  if (then >= t - 7 * 86_400_000) return "Previous 7 days";
  if (then >= t - 30 * 86_400_000) return "Previous 30 days";
  return "Older";
}
