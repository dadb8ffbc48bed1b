/**
 * The admin API (`/admin/keys`, `server.admin_key`): managed keys listed, created, changed and
 * revoked. The admin key is sent as a Bearer token; errors come back in OpenAI's shape and are
 * turned into one sentence naming the field (`param`) when there is one.
 */
import { t } from "../i18n";

export interface ManagedKey {
  id: string;
  name: string;
  models: string[] | null;
  rpm: number | null;
  tpm: number | null;
  max_streams: number | null;
  budget_usd: number | null;
  budget_period: "day" | "month" | null;
  expires_at: number | null;
  created_at: number;
  last_used_at: number | null;
  spend_usd: number;
  total_spend_usd: number;
  remaining_budget_usd: number | null;
}

export type KeyFields = Partial<Omit<ManagedKey, "id" | "created_at" | "last_used_at" | "spend_usd" | "total_spend_usd" | "remaining_budget_usd">>;

/** One UTC day of `GET /admin/keys/{id}/spend`. */
export interface SpendDay {
  date: string;
  start: number;
  spend_usd: number;
  /** Spent in the budget's period (that day, the month so far, all time) by the day's end. */
  period_spend_usd: number;
  budget_usd: number | null;
}

export interface KeySpend {
  id: string;
  name: string;
  days: number;
  budget_usd: number | null;
  budget_period: "day" | "month" | null;
  spend_usd: number;
  total_spend_usd: number;
  window_spend_usd: number;
  data: SpendDay[];
}

export class AdminError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

type Fetch = typeof fetch;

export class AdminClient {
  constructor(
    private readonly adminKey: () => string,
    private readonly base = "",
    private readonly fetcher: Fetch = (...args) => fetch(...args),
  ) {}

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.adminKey()}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await this.fetcher(`${this.base}/admin/keys${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let data: unknown = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) throw errorOf(response.status, data);
    return data as T;
  }

  async list(): Promise<ManagedKey[]> {
    const page = await this.call<{ data: ManagedKey[] }>("GET", "");
    return page.data;
  }

  /** The new key and its secret, which the gateway shows this once. */
  create(fields: KeyFields & { name: string }): Promise<ManagedKey & { secret: string }> {
    return this.call("POST", "", fields);
  }

  update(id: string, fields: KeyFields): Promise<ManagedKey> {
    return this.call("PATCH", `/${encodeURIComponent(id)}`, fields);
  }

  async revoke(id: string): Promise<void> {
    await this.call("DELETE", `/${encodeURIComponent(id)}`);
  }

  /** The key's spend per UTC day over the last `days` days, zero-filled, with its budget. */
  spend(id: string, days = 30): Promise<KeySpend> {
    return this.call("GET", `/${encodeURIComponent(id)}/spend?days=${days}`);
  }
}

export function errorOf(status: number, data: unknown): AdminError {
  const error = (data as { error?: { message?: unknown; param?: unknown } } | null)?.error;
  const message = typeof error?.message === "string" ? error.message : t("admin.answered", { status });
  const param = typeof error?.param === "string" ? error.param : null;
  if (status === 401) return new AdminError(t("admin.keyMissing"), status);
  if (status === 403) return new AdminError(t("admin.notAdminKey"), status);
  if (status === 404 && param === null) return new AdminError(t("admin.noAdminApi"), status);
  return new AdminError(message, status, param);
}

/** The share of the budget spent in the current period, 0–1; null without a budget. */
export function budgetShare(key: ManagedKey): number | null {
  if (key.budget_usd === null) return null;
  if (key.budget_usd === 0) return 1;
  return Math.min(1, key.spend_usd / key.budget_usd);
}

/** Optional numbers of a form: "" is null, anything else a positive whole number or an error. */
export function limitOf(text: string, name: string): number | null {
  const trimmed = text.trim();
  if (trimmed === "") return null;
  const value = Number(trimmed);
  if (!Number.isInteger(value) || value <= 0) throw new AdminError(t("admin.positiveWhole", { name }), 400, name);
  return value;
}

/** The chart of a key's spend against its budget: x in Unix seconds (each UTC day), the spend
 *  that counts against the budget, the budget line (when there is one), and, unless the budget is
 *  per day (then the two are one), what each day cost. */
export function spendChart(spend: KeySpend, labels: { period: string; budget: string; daily: string }): {
  times: number[];
  series: { label: string; values: (number | null)[] }[];
} {
  const times = spend.data.map((d) => d.start);
  const series: { label: string; values: (number | null)[] }[] = [{ label: labels.period, values: spend.data.map((d) => d.period_spend_usd) }];
  if (spend.budget_usd !== null) series.push({ label: labels.budget, values: spend.data.map((d) => d.budget_usd) });
  if (spend.budget_period !== "day") series.push({ label: labels.daily, values: spend.data.map((d) => d.spend_usd) });
  return { times, series };
}
