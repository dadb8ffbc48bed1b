"""Scaling with workers: the throughput (and non-stream) load against ``llms serve --workers 1``
and ``--workers 2``, requests/s of each and their ratio, with every process's CPU.

The gateways are the dedicated ones of ``bench.gateways`` (the same processes the open-streams
scenario used, when it ran first). The load generator and the fake upstream run on the same
machine as the workers, so on a machine with few cores the ratio stays well below the number of
workers; the CPU columns show where the cores went. Without ``--workers`` in ``llms serve`` the
scenario is reported as skipped.
"""

from __future__ import annotations

import sys
import time

from bench.figures import Report
from bench.gateways import Gateways, machine_busy_s
from bench.procs import Child
from bench.scenarios import NONSTREAM, THROUGHPUT, Scenario, measure, settings_of

WORKERS = (1, 2)
SCALING_FULL = (
    Scenario("throughput", THROUGHPUT, True, 4000, 64, 120, 64),
    Scenario("nonstream", NONSTREAM, False, 2000, 32, 120, 32),
)
SCALING_QUICK = (
    Scenario("throughput", THROUGHPUT, True, 16, 8, 20, 8),
    Scenario("nonstream", NONSTREAM, False, 16, 8, 20, 8),
)
NO_WORKERS = "skipped: llms serve has no --workers"


def scaling_models(scenarios: tuple[Scenario, ...]) -> list[str]:
    """The models the dedicated gateways must route for these scenarios."""
    return sorted({s.shape.model for s in scenarios})


async def run_scaling(
    scenarios: tuple[Scenario, ...], upstream: Child, gateways: Gateways | None, skipped: str
) -> Report:
    """Each scenario against each worker count; requests/s, ratios and CPU in cores."""
    if gateways is None:
        return {"skipped": skipped}
    await gateways.get(1)  # the first start tells whether this build has --workers
    if not gateways.has_workers:
        return {"skipped": NO_WORKERS}
    report: Report = {
        "settings": {s.name: settings_of(s) for s in scenarios},
        "workers": {},
    }
    for workers in WORKERS:
        gateway = await gateways.get(workers)
        assert gateway is not None
        runs: Report = {}
        for scenario in scenarios:
            busy, begin = machine_busy_s(), time.perf_counter()
            run = await measure(scenario, gateway, {"upstream": upstream, "gateway": gateway})
            # Machine-wide, over the warm-up and the measured part: other jobs show up here.
            run["machine_busy_cores"] = (machine_busy_s() - busy) / (time.perf_counter() - begin)
            wall = run["wall_s"] or None
            run["cpu_cores"] = {
                name: (cpu["seconds"] / wall if wall else None) for name, cpu in run["cpu"].items()
            }
            runs[scenario.name] = run
        report["workers"][str(workers)] = runs
        print(f"scaling --workers {workers}: done", file=sys.stderr, flush=True)
    report["figures"] = scaling_figures(report, scenarios)
    return report


def scaling_figures(report: Report, scenarios: tuple[Scenario, ...]) -> Report:
    """requests/s by worker count and the ratio of the last to the first, per scenario."""
    first, last = str(WORKERS[0]), str(WORKERS[-1])
    out: Report = {"errors": 0}
    for scenario in scenarios:
        rps = {w: report["workers"][w][scenario.name]["rps"] for w in report["workers"]}
        base, top = rps.get(first), rps.get(last)
        out[scenario.name] = {
            "rps": rps,
            "ratio": top / base if top and base else None,
            "gateway_cores": {
                w: report["workers"][w][scenario.name]["cpu_cores"].get("gateway")
                for w in report["workers"]
            },
        }
        out["errors"] += sum(report["workers"][w][scenario.name]["errors"] for w in rps)
    return out
