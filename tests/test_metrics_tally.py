"""The worker's batched metrics (``hookline.metrics.AttemptTally``) publish exactly what observing
each attempt one by one would have: same counters, same histogram buckets and sums."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from hookline import metrics

AMOUNTS = st.lists(
    st.one_of(
        st.sampled_from(metrics.ATTEMPT_BUCKETS),  # exactly on a bound: in that bucket (le)
        st.floats(0, 120, allow_nan=False),
    ),
    max_size=60,
)


def _samples(histogram: Histogram) -> dict[tuple[str, str], float]:
    return {
        (s.name.rsplit("_", 1)[-1], s.labels.get("le", "")): s.value
        for family in histogram.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


@given(batches=st.lists(AMOUNTS, max_size=4))
def test_published_buckets_are_what_observe_makes(batches: list[list[float]]) -> None:
    registry = CollectorRegistry()
    one_by_one = Histogram("one", "x", buckets=metrics.ATTEMPT_BUCKETS, registry=registry)
    batched = Histogram("batched", "x", buckets=metrics.ATTEMPT_BUCKETS, registry=registry)
    observed = metrics._Observed(metrics.ATTEMPT_BUCKETS)
    for batch in batches:
        for amount in batch:
            one_by_one.observe(amount)
            observed.add(amount)
        observed.publish(batched)  # several publishes add up
    expected, got = _samples(one_by_one), _samples(batched)
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        assert math.isclose(got[key], value, rel_tol=1e-9, abs_tol=1e-9), key


def test_the_tally_publishes_counts_once() -> None:
    def value(name: str, **labels: str) -> float:
        found = metrics.REGISTRY.get_sample_value(name, labels)
        return found or 0.0

    before = (
        value("hookline_attempts_total", status_class="4xx"),
        value("hookline_deliveries_finished_total", outcome="failed"),
        value("hookline_attempt_duration_seconds_count", status_class="4xx"),
        value("hookline_delivery_latency_seconds_count"),
    )
    tally = metrics.AttemptTally()
    for _ in range(3):
        tally.attempt("4xx", 0.02)
    tally.attempt("not_sent", None)
    tally.finished("failed", None)
    tally.finished("succeeded", 1.5)
    tally.publish()
    tally.publish()  # nothing new: nothing added
    after = (
        value("hookline_attempts_total", status_class="4xx"),
        value("hookline_deliveries_finished_total", outcome="failed"),
        value("hookline_attempt_duration_seconds_count", status_class="4xx"),
        value("hookline_delivery_latency_seconds_count"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [3, 1, 3, 1]
