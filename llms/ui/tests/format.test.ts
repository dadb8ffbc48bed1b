import { afterEach, describe, expect, it } from "vitest";
import { i18n } from "../src/i18n";
import { chartNumber, decimal, money, moneyTick } from "../src/lib/format";

afterEach(() => {
  i18n.global.locale.value = "en";
});

describe("numbers in the UI's language", () => {
  it("a chart's axis: up to 2 decimals, k from 1000 on, a German decimal comma", () => {
    const ticks = [0, 0.25, 0.5, 0.75, 1, 1500, 6082.2, 12000];
    expect(ticks.map((v) => chartNumber(v, true))).toEqual(["0", "0.25", "0.5", "0.75", "1", "1.5k", "6.1k", "12k"]);
    i18n.global.locale.value = "de";
    expect(ticks.map((v) => chartNumber(v, true))).toEqual(["0", "0,25", "0,5", "0,75", "1", "1,5k", "6,1k", "12k"]);
  });

  it("a chart's legend: the value itself, grouped, up to 2 decimals", () => {
    expect(chartNumber(6082.234)).toBe("6,082.23");
    expect(chartNumber(13)).toBe("13");
    i18n.global.locale.value = "de";
    expect(chartNumber(6082.234)).toBe("6.082,23");
    expect(chartNumber(0.5)).toBe("0,5");
  });

  it("decimals and money follow the language too", () => {
    expect(decimal(45.54)).toBe("45.5");
    expect(money(0.09)).toBe("$0.09");
    i18n.global.locale.value = "de";
    expect(decimal(45.54)).toBe("45,5");
    expect(money(0.09)).toBe("0,09\u00a0$"); // a no-break space, as Intl writes it
  });
});

describe("a money axis", () => {
  it("shows as many decimals as its step needs, so ticks are not rounded into uneven ones", () => {
    expect([0, 0.025, 0.05, 0.075, 0.1].map((v) => moneyTick(v, 0.025))).toEqual(["$0.000", "$0.025", "$0.050", "$0.075", "$0.100"]);
    expect([0, 0.5, 1].map((v) => moneyTick(v, 0.5))).toEqual(["$0.00", "$0.50", "$1.00"]);
    expect(moneyTick(20, 10)).toBe("$20.00");
    expect(moneyTick(0.0002, 0.0001)).toBe("$0.0002");
    i18n.global.locale.value = "de";
    expect(moneyTick(0.025, 0.025)).toBe("0,025\u00a0$");
  });
});
