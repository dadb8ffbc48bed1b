import type { ErrorBody } from "./types";

/** A failure the gateway (or the network) reported, in the shape the UI shows. */
export class ApiError extends Error {
  /** HTTP status; 0 for a network failure, 200 for an error event inside a stream. */
  readonly status: number;
  readonly code: string | null;
  readonly type: string | null;
  /** Seconds from `Retry-After` / `retry-after-ms`, when the gateway sent one. */
  readonly retryAfter: number | null;
  /** The gateway's `X-Request-Id`, to quote when reporting the failure. */
  readonly requestId: string | null;

  constructor(
    message: string,
    options: {
      status?: number;
      code?: string | null;
      type?: string | null;
      retryAfter?: number | null;
      requestId?: string | null;
    } = {},
  ) {
    super(message);
    this.name = "ApiError";
    this.status = options.status ?? 0;
    this.code = options.code ?? null;
    this.type = options.type ?? null;
    this.retryAfter = options.retryAfter ?? null;
    this.requestId = options.requestId ?? null;
  }

  get isNetwork(): boolean {
    return this.status === 0;
  }

  toJSON(): StoredError {
    return {
      message: this.message,
      status: this.status,
      code: this.code,
      type: this.type,
      retryAfter: this.retryAfter,
      ...(this.requestId ? { requestId: this.requestId } : {}),
    };
  }
}

/** An ApiError as stored with a message (IndexedDB keeps plain data). */
export interface StoredError {
  message: string;
  status: number;
  code: string | null;
  type: string | null;
  retryAfter: number | null;
  requestId?: string;
}

/** `Retry-After` (seconds or an HTTP date) or `retry-after-ms`, in seconds. */
export function retryAfterOf(headers: Headers, now: number = Date.now()): number | null {
  const ms = headers.get("retry-after-ms");
  if (ms !== null && /^\d+(\.\d+)?$/.test(ms.trim())) return Math.ceil(Number(ms) / 1000);
  const raw = headers.get("retry-after");
  if (raw === null) return null;
  const text = raw.trim();
  if (/^\d+$/.test(text)) return Number.parseInt(text, 10);
  const date = Date.parse(text);
  if (!Number.isNaN(date)) return Math.max(0, Math.ceil((date - now) / 1000));
  return null;
}

/** The error of a non-2xx response: the OpenAI JSON body when there is one. */
export async function errorFromResponse(response: Response): Promise<ApiError> {
  let body: ErrorBody | null = null;
  let text = "";
  try {
    text = await response.text();
    const parsed: unknown = JSON.parse(text);
    body = errorBodyOf(parsed);
  } catch {
    // not JSON: a proxy's page, an empty body…
  }
  const fallback = text && text.length < 300 && !text.trimStart().startsWith("<")
    ? text.trim()
    : `${response.status} ${response.statusText || "error"}`.trim();
  return new ApiError(body?.message || fallback, {
    status: response.status,
    code: body?.code === undefined || body?.code === null ? null : String(body.code),
    type: body?.type ?? null,
    retryAfter: retryAfterOf(response.headers),
    requestId: response.headers.get("X-Request-Id"),
  });
}

/** `{"error": {...}}` → the error object, else null. */
export function errorBodyOf(value: unknown): ErrorBody | null {
  if (typeof value !== "object" || value === null || !("error" in value)) return null;
  const error = (value as { error: unknown }).error;
  if (typeof error === "string") return { message: error };
  if (typeof error !== "object" || error === null) return null;
  const body = error as Partial<ErrorBody>;
  return {
    message: typeof body.message === "string" ? body.message : "The gateway reported an error.",
    type: body.type ?? null,
    param: body.param ?? null,
    code: body.code ?? null,
  };
}

export function isAbort(error: unknown): boolean {
  return (
    typeof error === "object" &&
    error !== null &&
    "name" in error &&
    ((error as { name: string }).name === "AbortError" || (error as { name: string }).name === "TimeoutError")
  );
}
