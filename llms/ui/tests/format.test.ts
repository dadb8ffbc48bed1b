import { afterEach, describe, expect, it } from "vitest";
import { i18n } from "../src/i18n";
import { chartNumber, decimal, money } from "../src/lib/format";

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
