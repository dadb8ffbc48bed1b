"""The scenarios run on dedicated gateways: many open streams, then scaling with workers.

Called by ``python -m bench`` after the fleet's scenarios; fills ``report["open_streams"]``,
``report["scaling"]`` and ``report["dedicated_gateways"]`` and stops every gateway it started.
"""

from __future__ import annotations

from pathlib import Path

from bench.figures import Report
from bench.gateways import WARM_SHAPE, Gateways
from bench.open_streams import OPEN_FULL, OPEN_QUICK, run_open_streams
from bench.procs import Child
from bench.scaling import SCALING_FULL, SCALING_QUICK, run_scaling, scaling_models

NAMES = ("open_streams", "scaling")


async def run_dedicated(
    report: Report,
    *,
    upstream: Child,
    quick: bool,
    only: set[str] | None,
    direct_only: bool,
    tmp: Path,
    results_dir: Path,
    module: str,
    start_timeout: float,
) -> None:
    """Run the open-streams and scaling scenarios (those ``only`` names, if given)."""
    want = [name for name in NAMES if only is None or name in only]
    if not want:
        return
    sizes = OPEN_QUICK if quick else OPEN_FULL
    scaling = SCALING_QUICK if quick else SCALING_FULL
    gateways = None
    if not direct_only:
        models = [size.shape.model for size in sizes] + scaling_models(scaling)
        gateways = Gateways(
            upstream,
            sorted({*models, WARM_SHAPE.model}),
            tmp,
            results_dir,
            module,
            start_timeout,
        )
        report["dedicated_gateways"] = gateways.info
    try:
        if "open_streams" in want:
            report["open_streams"] = await run_open_streams(sizes, upstream, gateways, results_dir)
        if "scaling" in want:
            report["scaling"] = await run_scaling(scaling, upstream, gateways, "direct-only run")
    finally:
        if gateways is not None:
            await gateways.stop_all()


def dedicated_errors(report: Report) -> int:
    """Failed requests of these scenarios, plus dedicated gateways that did not stop cleanly."""
    errors: int = (report.get("open_streams") or {}).get("figures", {}).get("errors", 0)
    errors += (report.get("scaling") or {}).get("figures", {}).get("errors", 0)
    for entry in (report.get("dedicated_gateways") or {}).values():
        errors += (entry.get("warmup") or {}).get("errors", 0)
        stopped = entry.get("stop")
        if stopped is not None and stopped != "stopped on SIGTERM with exit code 0":
            errors += 1
    return errors
