"""What the benchmark's figures rest on: the sink answers every request it is sent, however the bytes
arrive, and counts only what it should; the PostgreSQL server's CPU is attributed to the role that
spent it (issue 16: a bench that reports what a user would see)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from bench import before, pg, scenarios, sink
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import PG_SERVER_URL


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True


def request(path: str, webhook_id: str, body: bytes, upper: bool) -> bytes:
    names = ("Content-Length", "Webhook-Id") if upper else ("content-length", "webhook-id")
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{names[1]}: {webhook_id}\r\n"
        f"content-type: application/json\r\n{names[0]}: {len(body)}\r\n\r\n"
    ).encode() + body


requests = st.lists(
    st.tuples(
        st.sampled_from(["/ok/a", "/ok/b", "/warm/0", "/fail/x"]),
        st.from_regex(r"msg_[a-z0-9]{1,12}", fullmatch=True),
        st.binary(max_size=300).filter(lambda b: b"\r\n\r\n" not in b),
        st.booleans(),
    ),
    min_size=1,
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(requests, st.data())
def test_the_sink_answers_each_request_however_the_bytes_are_split(
    sent: list[tuple[str, str, bytes, bool]], data: st.DataObject
) -> None:
    _fresh_sink().answer(b"/_reset", b"")  # the counts are module-wide
    stream = b"".join(request(*r) for r in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    protocol = _fresh_sink()
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        protocol.data_received(stream[start:end])
    transport = protocol.transport
    assert isinstance(transport, Transport) and not transport.closed
    expected = [sink.FAIL if path.startswith("/fail") else sink.OK for path, *_ in sent]
    assert transport.written == expected
    oks = [(path, webhook_id) for path, webhook_id, *_ in sent if path.startswith("/ok")]
    assert len(oks) == sink.COUNT
    assert set(sink.RECEIVED) == {webhook_id.encode() for _, webhook_id in oks}
    assert sink.OTHER["fail"] == sum(path.startswith("/fail") for path, *_ in sent)


def _fresh_sink() -> Any:
    protocol = sink.SinkProtocol()
    protocol.connection_made(Transport())  # type: ignore[arg-type]
    return protocol


def test_a_request_line_that_is_not_http_closes_the_connection() -> None:
    protocol = _fresh_sink()
    protocol.data_received(b"garbage\r\n\r\n")
    assert protocol.transport.closed


def _burn(application_name: str) -> None:
    """About a second of the server's CPU on one connection named ``application_name``, then closed."""

    async def run() -> None:
        conn = await asyncpg.connect(
            PG_SERVER_URL, server_settings={"application_name": application_name}, timeout=10
        )
        try:
            await conn.execute("SELECT count(*) FROM generate_series(1, 20000000)")
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.mark.usefixtures("pg_url")  # the server is there (else skipped, or failed in CI)
def test_server_cpu_counts_a_closed_connection_and_names_an_open_one() -> None:
    server = pg.ServerCpu(PG_SERVER_URL)
    assert server.postmaster is not None
    before = server.snapshot()
    _burn("hookline api")  # closed by now: its time is in the postmaster's children's
    spent = server.since(before)
    assert sum(spent.values()) >= 0.3, spent
    assert spent.get("api", 0.0) < 0.1  # a connection gone is the server's, not guessed

    async def held() -> dict[str, float]:
        conn = await asyncpg.connect(
            PG_SERVER_URL, server_settings={"application_name": "hookline worker"}, timeout=10
        )
        try:
            start = await asyncio.to_thread(server.snapshot)
            await conn.execute("SELECT count(*) FROM generate_series(1, 20000000)")
            return await asyncio.to_thread(server.since, start)
        finally:
            await conn.close()

    spent = asyncio.run(held())
    assert spent.get("worker", 0.0) >= 0.3, spent


def test_a_store_names_its_role_to_postgresql(pg_url: str) -> None:
    """Operators (and the bench's CPU split) tell hookline's connections apart in pg_stat_activity."""
    from hookline.store.engine import Store

    async def run() -> str:
        store = Store.from_url(pg_url, role="worker")
        try:
            async with store.read() as conn:
                return str((await conn.exec_driver_sql("SHOW application_name")).scalar_one())
        finally:
            await store.close()

    assert asyncio.run(run()) == "hookline worker"


def test_every_claim_and_record_statement_is_told_apart_even_cut_at_a_kilobyte() -> None:
    """pg_stat_activity shows a statement's first kilobyte (track_activity_query_size): the budget still
    has to know whether the server's CPU went to a claim or to recording results."""
    from bench.budget import CLAIM_STATEMENTS, RECORD_STATEMENTS, statement_kind

    for kind, statements in (("claim", CLAIM_STATEMENTS), ("record", RECORD_STATEMENTS)):
        for statement in statements:
            assert statement_kind(statement) == kind
            assert statement_kind(statement[:1023]) == kind
    assert statement_kind("COMMIT") == "other"
    assert statement_kind("SELECT 1") == "other"


def test_a_sampled_stack_counts_for_its_innermost_stage(tmp_path: Any) -> None:
    from bench.budget import LOOP, stage_shares

    frame = "{} (/x/hookline/dispatch/{}.py:1)".format
    attempt = ";".join([frame("Worker._attempt", "worker"), frame("HttpSender.send", "sender")])
    raw = tmp_path / "raw.txt"
    raw.write_text(
        "\n".join(
            [
                f"{frame('Runner.run', 'runners')};{attempt};{frame('signature_headers', 'signing')} 2",
                f"{frame('Runner.run', 'runners')};{attempt} 3",
                f"{frame('Runner.run', 'runners')};{frame('Worker._attempt', 'worker')};"
                f"{frame('Worker._finish', 'worker')} 1",
                f"{frame('Runner.run', 'runners')};{frame('Worker.claim', 'worker')} 3",
                f"{frame('Runner.run', 'runners')} 1",
            ]
        )
    )
    shares = stage_shares(raw)
    assert shares == {"sign": 0.2, "send": 0.3, "record": 0.1, "claim": 0.3, LOOP: 0.1}


def test_an_earlier_commit_runs_from_its_own_checkout(tmp_path: Path) -> None:
    """``--before REF``: the commit is checked out under the run's directory, a process started with its
    environment imports hookline from there (not the installed working tree), and the checkout is gone
    after ``remove``, git's record of it too."""
    earlier = before.check_out("HEAD", tmp_path)
    try:
        assert earlier.checkout.parent == tmp_path
        found = subprocess.run(
            [sys.executable, "-c", "import hookline; print(hookline.__file__)"],
            env={"PATH": "/usr/bin:/bin", **earlier.env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert Path(found).is_relative_to(earlier.checkout / "src")
    finally:
        before.remove(earlier)
    assert not earlier.checkout.exists()
    listed = subprocess.run(
        ["git", "-C", str(before.ROOT), "worktree", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert str(earlier.checkout) not in listed


def test_an_unknown_ref_is_refused_with_gits_reason(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="rev-parse"):
        before.check_out("no-such-ref-anywhere", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_scenario_run_on_the_earlier_code_is_told_apart_and_compared_in_order(tmp_path: Path) -> None:
    """--before runs issue 4's scenarios twice: the earlier code's rows carry its label (and keys of their
    own, so a ratio never reads them as the working tree's), and each figure with a target gets a change
    row against its twin, the n-th of a name against the n-th (a scenario gives peak RSS once per phase)."""
    bench = scenarios.Bench(scenarios.QUICK, False, ("postgresql",), None, None, None)  # type: ignore[arg-type]
    bench.before = before.Before("abc1234", tmp_path)
    for code, values in (("now", (40.0, 80.0, 150.0)), ("before", (50.0, 200.0, 160.0))):
        with bench.running_before() if code == "before" else contextlib.nullcontext():
            bench.add("latency", "postgresql", "p99", values[0], "ms", at_most=50)
            bench.add("latency", "postgresql", "p50", 1.0, "ms")  # no target: no change row
            bench.add("latency", "postgresql", "p99", values[1], "ms", at_most=50, key="p99:postgresql")
            bench.add("burst", "postgresql", "peak RSS", values[2], "MB", at_most=250)
    assert bench.code == ""
    names = [f.name for f in bench.figures if f.code]
    assert names == [
        "p99 [before abc1234]",
        "p50 [before abc1234]",
        "p99 [before abc1234]",
        "peak RSS [before abc1234]",
    ]
    assert bench.values == {"p99:postgresql": 80.0, "p99:postgresql:before abc1234": 200.0}
    scenarios.before_rows(bench, "postgresql", "latency")
    changes = [(f.name, f.value) for f in bench.figures if f.scenario == "change"]
    assert changes == [("latency p99, now / before abc1234", 0.8), ("latency p99, now / before abc1234", 0.4)]
    scenarios.before_rows(bench, "postgresql", "burst")
    assert bench.figures[-1].name == "burst peak RSS, now / before abc1234"
    assert bench.figures[-1].value == pytest.approx(150 / 160)
