/** Numbers and times as the UI shows them, in the UI's language (Intl with i18n's locale). */
import { locale, t } from "../i18n";

/** A number with exactly `digits` decimals: 1.5 in English, 1,5 in German. */
export function decimal(n: number, digits = 1): string {
  return new Intl.NumberFormat(locale(), { minimumFractionDigits: digits, maximumFractionDigits: digits, useGrouping: false }).format(n);
}

export function seconds(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${decimal(ms / 1000)} s`;
  const m = Math.floor(ms / 60_000);
  const s = Math.round((ms % 60_000) / 1000);
  return `${m} min ${s} s`;
}

export function integer(n: number): string {
  return n.toLocaleString(locale() === "de" ? "de-DE" : "en-US");
}

export function compact(n: number): string {
  const tag = locale() === "de" ? "de-DE" : "en-US";
  if (Math.abs(n) < 1000) return new Intl.NumberFormat(tag, { maximumFractionDigits: 2, useGrouping: false }).format(n);
  return new Intl.NumberFormat(tag, { notation: "compact", maximumFractionDigits: 1 }).format(n);
}

/**
 * A chart's number (uPlot's axis and legend), up to 2 decimals in the UI's language: 0.25 and
 * 1,234.5 in English, 0,25 and 1.234,5 in German. `short` (an axis label): "1.5k" / "1,5k" from
 * 1000 on, no grouping.
 */
export function chartNumber(n: number, short = false): string {
  const tag = locale() === "de" ? "de-DE" : "en-US";
  if (short && Math.abs(n) >= 1000) {
    return `${new Intl.NumberFormat(tag, { maximumFractionDigits: 1, useGrouping: false }).format(n / 1000)}k`;
  }
  return new Intl.NumberFormat(tag, { maximumFractionDigits: 2, useGrouping: !short }).format(n);
}

/** US dollars (the gateway's prices), four decimals below a cent (or `digits`). */
export function money(value: number, digits: number = value < 0.01 && value > 0 ? 4 : 2): string {
  return new Intl.NumberFormat(locale() === "de" ? "de-DE" : "en-US", {
    style: "currency",
    currency: "USD",
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  }).format(value);
}

/**
 * A money axis label: as many decimals as the ticks' step needs (a $0.025 step reads $0.025,
 * $0.050, not $0.03, $0.05), at least 2, at most 6.
 */
export function moneyTick(value: number, step: number): string {
  let digits = 2;
  while (digits < 6 && step > 0 && Math.abs(step * 10 ** digits - Math.round(step * 10 ** digits)) > 1e-6) digits++;
  return money(value, digits);
}

/** "just now", "5 min ago", "yesterday", or a date. */
export function relativeTime(then: number, now: number = Date.now()): string {
  const diff = Math.max(0, now - then);
  if (diff < 45_000) return t("time.justNow");
  if (diff < 3_600_000) return t("time.minutesAgo", { n: Math.round(diff / 60_000) });
  const date = new Date(then);
  const today = new Date(now);
  if (date.toDateString() === today.toDateString()) {
    return date.toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit" });
  }
  const yesterday = new Date(now - 86_400_000);
  if (date.toDateString() === yesterday.toDateString()) return t("time.yesterday");
  return date.toLocaleDateString(locale(), { month: "short", day: "numeric" });
}

/** Section of the thread list a time falls in. */
export function dayGroup(then: number, now: number = Date.now()): string {
  const startOfToday = new Date(now);
  startOfToday.setHours(0, 0, 0, 0);
  const day = startOfToday.getTime();
  if (then >= day) return t("time.today");
  if (then >= day - 86_400_000) return t("time.yesterdayGroup");
  if (then >= day - 7 * 86_400_000) return t("time.previous7");
  if (then >= day - 30 * 86_400_000) return t("time.previous30");
  return t("time.older");
}
