/**
 * The usage API (`GET /api/usage?from&to&group_by`) read defensively: rows may be under `data`
 * (`group`, `ttft_p50_s`, `cost_usd`) or `groups` (`key`, `ttft_p50_ms`, `cost`).
 */
import type { Gateway } from "../api/client";

export interface UsageRow {
  key: string;
  requests: number;
  errors: number;
  promptTokens: number;
  completionTokens: number;
  ttftP50Ms: number | null;
  ttftP95Ms: number | null;
  tokensPerS: number | null;
  cost: number | null;
}

export interface UsageReport {
  rows: UsageRow[];
  totals: UsageRow;
}

function num(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function ms(row: Record<string, unknown>, name: string): number | null {
  const direct = num(row[`${name}_ms`]);
  if (direct !== null) return direct;
  const secs = num(row[`${name}_s`]);
  return secs === null ? null : secs * 1000;
}

export function normalizeRow(raw: unknown, fallbackKey = "all"): UsageRow {
  const row = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
  const key = row.group ?? row.key ?? fallbackKey;
  return {
    key: key === null ? "(none)" : String(key),
    requests: num(row.requests) ?? 0,
    errors: num(row.errors) ?? 0,
    promptTokens: num(row.prompt_tokens) ?? 0,
    completionTokens: num(row.completion_tokens) ?? 0,
    ttftP50Ms: ms(row, "ttft_p50"),
    ttftP95Ms: ms(row, "ttft_p95"),
    tokensPerS: num(row.tokens_per_s),
    cost: num(row.cost_usd) ?? num(row.cost),
  };
}

function sum(rows: UsageRow[]): UsageRow {
  const total: UsageRow = {
    key: "all",
    requests: 0,
    errors: 0,
    promptTokens: 0,
    completionTokens: 0,
    ttftP50Ms: null,
    ttftP95Ms: null,
    tokensPerS: null,
    cost: null,
  };
  for (const row of rows) {
    total.requests += row.requests;
    total.errors += row.errors;
    total.promptTokens += row.promptTokens;
    total.completionTokens += row.completionTokens;
    if (row.cost !== null) total.cost = (total.cost ?? 0) + row.cost;
  }
  return total;
}

export function normalizeReport(raw: unknown): UsageReport {
  const body = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
  const list = Array.isArray(body.data) ? body.data : Array.isArray(body.groups) ? body.groups : [];
  const rows = list.map((row) => normalizeRow(row));
  const totals = body.totals ? normalizeRow(body.totals) : sum(rows);
  return { rows, totals };
}

export type GroupBy = "model" | "provider";

export interface Series {
  /** Bucket starts, Unix seconds. */
  times: number[];
  /** Group → one row per bucket (null: no requests then). */
  byKey: Map<string, (UsageRow | null)[]>;
}

/** `count` buckets of `step` seconds ending now, one request per bucket (a few at a time). */
export async function fetchSeries(
  gateway: Gateway,
  groupBy: GroupBy,
  step: number,
  count: number,
  signal?: AbortSignal,
): Promise<Series> {
  const end = Math.ceil(Date.now() / 1000 / step) * step;
  const times = Array.from({ length: count }, (_, i) => end - (count - i) * step);
  const reports: (UsageReport | null)[] = new Array<UsageReport | null>(count).fill(null);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const from = times[i]!;
      const raw = await gateway.usage({ from: String(from), to: String(from + step), group_by: groupBy }, signal);
      reports[i] = raw === null ? null : normalizeReport(raw);
    }
  };
  await Promise.all(Array.from({ length: Math.min(6, count) }, worker));
  const byKey = new Map<string, (UsageRow | null)[]>();
  reports.forEach((report, i) => {
    for (const row of report?.rows ?? []) {
      let line = byKey.get(row.key);
      if (!line) byKey.set(row.key, (line = new Array<UsageRow | null>(count).fill(null)));
      line[i] = row;
    }
  });
  return { times, byKey };
}
