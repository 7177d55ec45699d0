"""Wall-clock cost of the PK estimator: one MAP fit, and a full estimate (MAP, interval, dose table).

Patient of pk.md 6.2 (male CML 70 kg 50 y, 400 mg q24h for 50 days, levels on day 50). Prints medians
and 90th percentiles over repeated runs after a warm-up. Run: .venv/bin/python bench/pk_speed.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from cds.pk import estimate_exposure, load_model
from cds.pk.examples import example_covariates, example_doses, example_history, example_levels, example_regimen
from cds.pk.map import fit_map
from cds.pk.model import typical_values
from cds.pk.objective import MapProblem

CASES = {
    "one level 3 h": ((3, 1500),),
    "one level 23.98 h": ((23.98, 1500),),
    "two levels": ((3, 1500), (23.98, 800)),
    "three levels": ((2, 1700), (8, 1300), (23, 700)),
}
REPEATS = 300


def _timings_ms(run: Callable[[], object], repeats: int = REPEATS) -> list[float]:
    for _ in range(20):
        run()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        out.append((time.perf_counter() - start) * 1000.0)
    return out


def _report(label: str, timings: list[float]) -> None:
    ordered = sorted(timings)
    p90 = ordered[int(0.9 * len(ordered)) - 1]
    print(f"  {label:<22} median {statistics.median(timings):6.2f} ms   p90 {p90:6.2f} ms")


def main() -> None:
    model = load_model("imatinib-widmer2006")
    covariates, regimen, doses = example_covariates(), example_regimen(), example_doses(50)
    typical = typical_values(model, covariates.values())
    history = example_history()
    print(f"MAP fit (problem set-up + bounded quasi-Newton + Laplace Hessian), {REPEATS} runs each:")
    all_fit: list[float] = []
    for label, samples in CASES.items():
        levels = example_levels(*samples)
        timings = _timings_ms(lambda lv=levels: fit_map(MapProblem(model, typical, history, lv)))  # type: ignore[misc]
        all_fit += timings
        _report(label, timings)
    _report("all cases", all_fit)
    print("Full estimate (MAP + Laplace interval, 4000 draws + dose table + log-linear):")
    all_full: list[float] = []
    for label, samples in CASES.items():
        levels = example_levels(*samples)

        def run(lv: list = levels) -> object:  # type: ignore[type-arg]
            return estimate_exposure(model, covariates, regimen, doses, lv, target_ng_ml=1000, proposal_threshold=0.8)

        timings = _timings_ms(run)
        all_full += timings
        _report(label, timings)
    _report("all cases", all_full)
    long_history(model, covariates)


def long_history(model: object, covariates: object) -> None:
    """Six years of daily doses generated from `regimen.since`, one level: the long-history path."""
    from datetime import UTC, datetime

    from cds.pk import Level, Regimen

    regimen = Regimen(400, 24, since=datetime(2020, 1, 1, 8, 0, tzinfo=UTC))
    levels = [Level(datetime(2026, 2, 2, 11, 0, tzinfo=UTC), 1500)]

    def run() -> object:
        return estimate_exposure(
            model,
            covariates,
            regimen,
            [],
            levels,
            target_ng_ml=1000,
            proposal_threshold=0.8,  # type: ignore[arg-type]
        )

    print("Full estimate, 6 years of daily doses (2,225 doses):")
    _report("one level 3 h", _timings_ms(run, 100))


if __name__ == "__main__":
    main()
