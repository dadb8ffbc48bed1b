/** The gateway's HTTP API as the UI uses it: auth header, errors as ApiError. */
import { ApiError, errorFromResponse, isAbort } from "./errors";
import type { ModelCard } from "./types";
import { t } from "../i18n";

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface GatewayOptions {
  fetch?: FetchLike;
  /** The key to send as `Authorization: Bearer`, if any. */
  apiKey?: () => string | null;
  /** Prefix of every path ("" = same origin). */
  base?: string;
}

export class Gateway {
  readonly fetch: FetchLike;
  readonly base: string;
  private readonly apiKey: () => string | null;

  constructor(options: GatewayOptions = {}) {
    // Bound: window.fetch called as a method of another object throws "Illegal invocation".
    this.fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.apiKey = options.apiKey ?? (() => null);
    this.base = options.base ?? "";
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    const key = this.apiKey();
    return key ? { Authorization: `Bearer ${key}`, ...extra } : { ...extra };
  }

  /** fetch, with a network failure as ApiError(status 0) and non-2xx as ApiError(status). */
  async request(path: string, init: RequestInit = {}): Promise<Response> {
    let response: Response;
    try {
      response = await this.fetch(this.base + path, {
        ...init,
        headers: this.headers((init.headers as Record<string, string> | undefined) ?? {}),
      });
    } catch (error) {
      // An abort rejects with the signal's reason (the watchdog's, or the user's Stop).
      if (init.signal?.aborted) throw init.signal.reason ?? error;
      if (isAbort(error)) throw error;
      throw new ApiError(networkMessage(error), { status: 0, code: "network_error" });
    }
    if (!response.ok) throw await errorFromResponse(response);
    return response;
  }

  async models(signal?: AbortSignal): Promise<ModelCard[]> {
    const response = await this.request("/v1/models", { signal, cache: "no-store" });
    const body = (await response.json()) as { data?: ModelCard[] };
    return Array.isArray(body.data) ? body.data : [];
  }

  /** Stop a resumable stream wherever it runs (idempotent). Never throws. */
  async cancel(streamId: string): Promise<void> {
    try {
      // keepalive: the request survives the page being closed right after Stop.
      await this.request(`/v1/streams/${encodeURIComponent(streamId)}/cancel`, {
        method: "POST",
        keepalive: true,
      });
    } catch {
      // The stream may be finished or expired already; nothing else to do.
    }
  }

  /** GET /api/usage; null when the gateway has no usage API (404). */
  async usage(params: Record<string, string>, signal?: AbortSignal): Promise<unknown | null> {
    const query = new URLSearchParams(params).toString();
    try {
      const response = await this.request(`/api/usage${query ? `?${query}` : ""}`, {
        signal,
        cache: "no-store",
      });
      return (await response.json()) as unknown;
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    }
  }
}

export function networkMessage(error: unknown): string {
  const offline = typeof navigator !== "undefined" && navigator.onLine === false;
  if (offline) return t("notice.youAreOffline");
  const detail = error instanceof Error && error.message ? ` (${error.message})` : "";
  return t("notice.unreachable", { detail });
}
