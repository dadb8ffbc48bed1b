/**
 * A failed answer in plain words: one sentence for the answer, the raw facts (the gateway's
 * message, status, code, type, request id) for a disclosure under it. Nothing here is shown
 * twice: the banner no longer repeats an answer's failure.
 */
import type { StoredError } from "../api/errors";
import { t } from "../i18n";

export interface Explained {
  /** "The answer failed" / "The answer was interrupted" / "Rate limited". */
  title: string;
  /** One plain sentence (or two): what happened and what to do. */
  text: string;
  /** Label → value, for the "Details" disclosure; empty values are left out. */
  details: [string, string][];
  /** A 429: Retry waits for `retryAfter` seconds from the end of the answer. */
  rateLimited: boolean;
}

/** The gateway's own codes said in plain words (message keys under `failure.`). */
const SERVER_CODES: Record<string, string> = {
  upstream_lost: "upstreamLost",
  upstream_timeout: "upstreamTimeout",
  slow_client: "slowClient",
  stream_events_expired: "eventsExpired",
  stream_evicted: "evicted",
};

function sentence(text: string): string {
  const trimmed = text.trim();
  if (!trimmed) return "";
  return /[.!?…]$/.test(trimmed) ? trimmed : `${trimmed}.`;
}

function plainText(error: StoredError): string {
  const { status, code } = error;
  if (code === "interrupted") return t("failure.interrupted");
  if (code === "connection_lost") {
    if (status === 404 || status === 410) return t("failure.lostGone");
    return t("failure.lost");
  }
  if (code === "timeout") return t("failure.timeout");
  if (code === "cancelled") return t("failure.cancelled");
  if (code && SERVER_CODES[code]) return t(`failure.${SERVER_CODES[code]!}`);
  if (status === 0) return t("failure.unreachable");
  if (status === 429) return t("failure.rateLimit");
  if (status === 401) return t("failure.badKey");
  if (status === 403) return t("failure.forbidden");
  if (status === 404 && code === "model_not_found") return t("failure.noModel");
  if (status === 413) return t("failure.tooLong");
  if (status >= 500 && status < 600) return t("failure.provider");
  if (status === 200) return t("failure.midStream");
  // 400 and the like: the gateway's own words say what to change.
  return sentence(error.message) || t("failure.unknown");
}

/** The plain sentence and the details of a stored error. */
export function explainError(error: StoredError | undefined, interrupted: boolean): Explained {
  const stored: StoredError = error ?? { message: "", status: 0, code: null, type: null, retryAfter: null };
  const rateLimited = stored.status === 429;
  const title = t(rateLimited ? "failure.rateLimitedTitle" : interrupted ? "failure.interruptedTitle" : "failure.failedTitle");
  let text = plainText(stored);
  if (interrupted) text = `${text} ${t("failure.partKept")}`;
  const details: [string, string][] = [];
  if (stored.message && sentence(stored.message) !== text) details.push([t("failure.message"), stored.message]);
  if (stored.status) details.push([t("failure.status"), String(stored.status)]);
  if (stored.code) details.push([t("failure.code"), stored.code]);
  if (stored.type) details.push([t("failure.type"), stored.type]);
  if (stored.requestId) details.push([t("failure.requestId"), stored.requestId]);
  return { title, text, details, rateLimited };
}

/** Seconds left before a rate-limited answer may be retried (0: now). */
export function retryWait(error: StoredError | undefined, endedAt: number | undefined, now: number): number {
  if (!error || error.status !== 429 || endedAt === undefined) return 0;
  const wait = error.retryAfter ?? 0;
  return Math.max(0, Math.ceil((endedAt + wait * 1000 - now) / 1000));
}
