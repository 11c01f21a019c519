"""The benchmark's smoke run (`python -m bench --quick`, part of `make test`) gives no verdicts: its sizes
are far too small for a figure to mean anything, so a row with a target says "smoke", never PASS or MISS
(issue 9: a newcomer read its MISS rows as the README's figures failing)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from bench.__main__ import SMOKE_NOTE, text_table
from bench.scenarios import FULL, QUICK, Bench


def bench(*, quick: bool) -> Bench:
    # Recording a figure touches no process, database or sink.
    unused = cast(Any, None)
    return Bench(QUICK if quick else FULL, quick, ("sqlite",), unused, unused, unused)


@pytest.mark.parametrize("value", [1.0, 10_000.0])
def test_a_quick_run_labels_its_rows_smoke(value: float, capsys: pytest.CaptureFixture[str]) -> None:
    run = bench(quick=True)
    run.add("fanout", "sqlite", "deliveries/s", value, "deliveries/s", at_least=5_000)
    run.add("memory", "sqlite", "peak RSS", value, "MB", at_most=250)
    run.add("ingest", "sqlite", "events/s", value, "events/s")  # no target: no label at all
    assert [figure.verdict for figure in run.figures] == ["smoke", "smoke", ""]
    shown = capsys.readouterr().out + text_table(run.figures)
    assert "PASS" not in shown and "MISS" not in shown
    assert "too small" in SMOKE_NOTE and "docs/benchmarks.md" in SMOKE_NOTE


def test_the_full_run_still_judges() -> None:
    run = bench(quick=False)
    run.add("fanout", "sqlite", "deliveries/s", 1.0, "deliveries/s", at_least=5_000)
    run.add("fanout", "sqlite", "deliveries/s", 9_000.0, "deliveries/s", at_least=5_000)
    assert [figure.verdict for figure in run.figures] == ["MISS", "PASS"]
