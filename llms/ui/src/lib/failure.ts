/**
 * A failed answer in plain words: one sentence for the answer, the raw facts (the gateway's
 * message, status, code, type, request id) for a disclosure under it. Nothing here is shown
 * twice: the banner no longer repeats an answer's failure.
 */
import type { StoredError } from "../api/errors";

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

const SERVER_CODES: Record<string, string> = {
  upstream_lost: "The provider stopped in the middle of the answer.",
  upstream_timeout: "The provider took too long to answer.",
  slow_client: "The browser read the answer too slowly and the gateway cut it off.",
  stream_events_expired: "The answer could not be resumed: the gateway no longer has its beginning.",
  stream_evicted: "The answer could not be resumed: the gateway no longer has it.",
};

function sentence(text: string): string {
  const trimmed = text.trim();
  if (!trimmed) return "";
  return /[.!?…]$/.test(trimmed) ? trimmed : `${trimmed}.`;
}

function plainText(error: StoredError): string {
  const { status, code } = error;
  if (code === "interrupted") return "The page was closed while this answer was streaming, and it could not be picked up again.";
  if (code === "connection_lost") {
    if (status === 404 || status === 410) return "The connection was lost and the gateway no longer has this answer.";
    return "The connection to the gateway was lost and could not be restored.";
  }
  if (code === "timeout") return "Nothing arrived from the gateway for too long.";
  if (code === "cancelled") return "The answer was stopped elsewhere.";
  if (code && SERVER_CODES[code]) return SERVER_CODES[code]!;
  if (status === 0) return "The gateway could not be reached. Check the connection.";
  if (status === 429) return "Too many requests: the rate limit was reached.";
  if (status === 401) return "The gateway did not accept the API key.";
  if (status === 403) return "This API key is not allowed to do that.";
  if (status === 404 && code === "model_not_found") return "The gateway does not serve this model (any more).";
  if (status === 413) return "The conversation is too long for the gateway to accept.";
  if (status >= 500 && status < 600) return "The provider could not answer right now.";
  if (status === 200) return "The provider reported an error during the answer.";
  // 400 and the like: the gateway's own words say what to change.
  return sentence(error.message) || "Something went wrong.";
}

/** The plain sentence and the details of a stored error. */
export function explainError(error: StoredError | undefined, interrupted: boolean): Explained {
  const stored: StoredError = error ?? { message: "", status: 0, code: null, type: null, retryAfter: null };
  const rateLimited = stored.status === 429;
  const title = rateLimited ? "Rate limited" : interrupted ? "The answer was interrupted" : "The answer failed";
  let text = plainText(stored);
  if (interrupted) text = `${text} The part received is kept.`;
  const details: [string, string][] = [];
  if (stored.message && sentence(stored.message) !== text) details.push(["Message", stored.message]);
  if (stored.status) details.push(["HTTP status", String(stored.status)]);
  if (stored.code) details.push(["Code", stored.code]);
  if (stored.type) details.push(["Type", stored.type]);
  if (stored.requestId) details.push(["Request id", stored.requestId]);
  return { title, text, details, rateLimited };
}

/** Seconds left before a rate-limited answer may be retried (0: now). */
export function retryWait(error: StoredError | undefined, endedAt: number | undefined, now: number): number {
  if (!error || error.status !== 429 || endedAt === undefined) return 0;
  const wait = error.retryAfter ?? 0;
  return Math.max(0, Math.ceil((endedAt + wait * 1000 - now) / 1000));
}
