import { describe, expect, it } from "vitest";
import { AdminClient, budgetShare, errorOf, limitOf, spendChart, type KeySpend, type ManagedKey } from "../src/lib/admin";

function key(over: Partial<ManagedKey> = {}): ManagedKey {
  return {
    id: "key_1", name: "ci", models: null, rpm: null, tpm: null, max_streams: null,
    budget_usd: 10, budget_period: "month", expires_at: null, created_at: 1, last_used_at: null,
    spend_usd: 2.5, total_spend_usd: 7, remaining_budget_usd: 7.5, ...over,
  };
}

describe("admin API client", () => {
  it("sends the admin key and the body, and reads the list", async () => {
    const seen: { url: string; init: RequestInit }[] = [];
    const client = new AdminClient(() => "adm-secret", "http://gw", async (url, init) => {
      seen.push({ url: String(url), init: init ?? {} });
      return new Response(JSON.stringify({ object: "list", data: [key()] }), { status: 200 });
    });
    const keys = await client.list();
    expect(keys.map((k) => k.name)).toEqual(["ci"]);
    await client.update("key/1", { rpm: 5 });
    expect(seen[0]!.url).toBe("http://gw/admin/keys");
    expect((seen[0]!.init.headers as Record<string, string>).Authorization).toBe("Bearer adm-secret");
    expect(seen[1]!.url).toBe("http://gw/admin/keys/key%2F1");
    expect(seen[1]!.init.method).toBe("PATCH");
    expect(seen[1]!.init.body).toBe('{"rpm":5}');
  });

  it("turns errors into sentences naming the field", async () => {
    const client = new AdminClient(() => "x", "", async () =>
      new Response(JSON.stringify({ error: { message: "`rpm` must be a positive integer or null.", type: "invalid_request_error", param: "rpm", code: "invalid_value" } }), { status: 400 }),
    );
    await expect(client.create({ name: "n", rpm: 0 })).rejects.toMatchObject({ status: 400, param: "rpm", message: "`rpm` must be a positive integer or null." });
    expect(errorOf(401, null).message).toMatch(/admin key is missing or wrong/);
    expect(errorOf(403, { error: { message: "x" } }).message).toMatch(/not the admin key/);
    expect(errorOf(404, null).message).toMatch(/no admin API/);
    expect(errorOf(404, { error: { message: "No key with id 'k'.", param: "id" } }).message).toBe("No key with id 'k'.");
    expect(errorOf(502, "not json").message).toBe("The gateway answered 502.");
  });

  it("computes the budget share and reads limits", () => {
    expect(budgetShare(key())).toBe(0.25);
    expect(budgetShare(key({ spend_usd: 20 }))).toBe(1);
    expect(budgetShare(key({ budget_usd: null }))).toBeNull();
    expect(budgetShare(key({ budget_usd: 0, spend_usd: 0 }))).toBe(1);
    expect(limitOf(" ", "rpm")).toBeNull();
    expect(limitOf("60", "rpm")).toBe(60);
    expect(() => limitOf("1.5", "rpm")).toThrow(/rpm must be a positive whole number/);
    expect(() => limitOf("-1", "tpm")).toThrow(/tpm/);
  });
});

describe("the /keys route", () => {
  it("is the admin page, and /admin is left to the admin API", async () => {
    const { parseRoute, pathOf } = await import("../src/lib/router");
    expect(parseRoute("/keys")).toEqual({ name: "admin" });
    expect(parseRoute("/keys/")).toEqual({ name: "admin" });
    expect(pathOf({ name: "admin" })).toBe("/keys");
    expect(parseRoute("/admin")).toEqual({ name: "chat", threadId: null });
  });
});

describe("a key's spend over time", () => {
  const DAY = 86400;
  function spend(over: Partial<KeySpend> = {}): KeySpend {
    return {
      id: "key_1", name: "ci", days: 3, budget_usd: 1, budget_period: "month", spend_usd: 0.75,
      total_spend_usd: 2, window_spend_usd: 0.75,
      data: [
        { date: "2026-11-30", start: 100 * DAY, spend_usd: 0.25, period_spend_usd: 0.5, budget_usd: 1 },
        { date: "2026-12-01", start: 101 * DAY, spend_usd: 0, period_spend_usd: 0, budget_usd: 1 },
        { date: "2026-12-02", start: 102 * DAY, spend_usd: 0.5, period_spend_usd: 0.5, budget_usd: 1 },
      ],
      ...over,
    };
  }
  const labels = { period: "spent this month", budget: "budget", daily: "per day" };

  it("asks for the key's days", async () => {
    const seen: string[] = [];
    const client = new AdminClient(() => "adm", "", async (url) => {
      seen.push(String(url));
      return new Response(JSON.stringify(spend()), { status: 200 });
    });
    expect((await client.spend("key/1", 7)).data).toHaveLength(3);
    expect(seen).toEqual(["/admin/keys/key%2F1/spend?days=7"]);
  });

  it("charts the spend that counts against the budget, the budget line and each day", () => {
    const chart = spendChart(spend(), labels);
    expect(chart.times).toEqual([100 * DAY, 101 * DAY, 102 * DAY]);
    expect(chart.series).toEqual([
      { label: "spent this month", values: [0.5, 0, 0.5] },
      { label: "budget", values: [1, 1, 1] },
      { label: "per day", values: [0.25, 0, 0.5] },
    ]);
    // A daily budget: the day's spend is what counts; no budget: no line.
    expect(spendChart(spend({ budget_period: "day" }), labels).series.map((s) => s.label)).toEqual(["spent this month", "budget"]);
    const free = spend({ budget_usd: null, budget_period: null });
    expect(spendChart(free, labels).series.map((s) => s.label)).toEqual(["spent this month", "per day"]);
  });
});
