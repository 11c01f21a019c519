"""``python -m bench``: hookline against the ceiling and Celery, side by side in one run.

    python -m bench                         # the full run at the issues' sizes (about 40 minutes on 2 cores)
    python -m bench --quick                 # a smoke run, under two minutes: rows say 'smoke', no verdicts
    python -m bench --scenarios throughput,latency --backends postgresql --markdown out.md
    python -m bench --scenarios ceiling,throughput --before main~3   # an earlier commit beside this tree

Everything runs on loopback: the sink, hookline (PostgreSQL: ``api`` + ``worker`` on a throwaway
database; SQLite: ``serve`` in a temporary directory), the load generator, the baselines. Every child
process is stopped and every database dropped at exit, also on Ctrl-C or SIGTERM. The exit code is 0
unless a scenario crashed (a missed target is printed as MISS, never an error; in a --quick run every
row with a target says 'smoke', as its sizes are too small for a verdict).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

from bench import before as earlier_code
from bench import budget, endpoint_scenarios, pg, retention_scenario, scaleout, scenarios, stats_scenario
from bench.api import Sink
from bench.deploy import BACKENDS
from bench.procs import Processes, free_port, port_open, wait_until
from bench.scenarios import FULL, QUICK, SCENARIOS, Bench, Figure, deployed, fmt


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="small sizes: a smoke run under two minutes")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"comma list of {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma list of sqlite, postgresql")
    parser.add_argument("--markdown", type=Path, help="also write the results as a markdown file")
    parser.add_argument("--keep-logs", action="store_true", help="keep the work directory (process logs)")
    parser.add_argument(
        "--before",
        metavar="REF",
        help="also run the throughput shapes on this earlier commit's code, in turn with the working tree's "
        "and both at the same moment, and issue 4's scenarios after the working tree's, and show the change "
        "(a git ref: a hash, a tag, main~3)",
    )
    args = parser.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for name in args.scenarios:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r} (choose from {', '.join(SCENARIOS)})")
    for name in args.backends:
        if name not in BACKENDS:
            parser.error(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
    return args


# --- the machine and the versions ---------------------------------------------------------------------


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole machine since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _own_cpu_seconds() -> float:
    """CPU time of the harness and of every child it has reaped (all of them, once they are stopped)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def environment(backends: list[str]) -> dict[str, str]:
    info = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores ({_cpu_model()}), {_memory_gib():.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "hookline": _version("hookline"),
        "aiohttp": _version("aiohttp"),
        "pyreqwest": _version("pyreqwest"),
        "celery": _version("celery"),
        "load average at start": _loadavg(),
    }
    if "postgresql" in backends:
        try:
            info["postgresql"] = pg.server_version()
        except Exception as exc:
            info["postgresql"] = f"unavailable ({type(exc).__name__})"
    return info


# --- output -------------------------------------------------------------------------------------------


COLUMNS = ("scenario", "backend", "figure", "value", "target", "result", "note")


def _cells(f: Figure) -> tuple[str, ...]:
    return (f.scenario, f.backend, f.name, fmt(f.value, f.unit), f.target, f.verdict, f.note)


def text_table(figures: list[Figure]) -> str:
    rows = [COLUMNS, *(_cells(f) for f in figures)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.rjust(w) if i == 3 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(figures: list[Figure], info: dict[str, str], command: str) -> str:
    lines = [f"Command: `{command}`", ""]
    lines += [f"- {key}: {value}" for key, value in info.items()]
    lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for f in figures:
        cells = [c.replace("|", "\\|") for c in _cells(f)]
        if f.verdict:
            cells[5] = f"**{f.verdict}**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --- the run -------------------------------------------------------------------------------------------


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_all(bench: Bench, selected: list[str], errors: list[str]) -> None:
    from hookline.catalog import load_default_catalog

    data: dict[str, Any] = next(t.example for t in load_default_catalog() if t.name == "message.sent")

    def failed(row: str, what: str, backend: str, exc: Exception) -> None:
        """A scenario or a deployment raised: said on the console, in the errors and as an ERROR row."""
        errors.append(f"{what} ({backend}): {type(exc).__name__}: {exc}")
        traceback.print_exc()
        bench.add(row, backend, "ERROR", None, "", note=f"{type(exc).__name__}: {str(exc)[:200]}")

    def attempt(name: str, backend: str, step: Callable[[], None]) -> None:
        if name not in selected:
            return
        print(f"== {name} ({backend})", flush=True)
        started = time.monotonic()
        try:
            step()
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            failed(name, name, backend, exc)
        print(f"   ({time.monotonic() - started:.0f} s)", flush=True)

    def before_too(backend: str, names: tuple[str, ...], step: Callable[[], None]) -> None:
        """--before: scenarios again on the earlier commit's code (each after the working tree's run, on
        deployments of its own), then a change row per figure with a target."""
        if bench.before is None or not any(name in selected for name in names):
            return
        with bench.running_before():
            try:
                step()
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                failed("deploy", f"{', '.join(names)} on {bench.code}", backend, exc)
        scenarios.before_rows(bench, backend, *names)

    def on_one_deployment(backend: str) -> None:
        """ingest, latency and burst on one deployment of the earlier code, as on the working tree's."""
        with deployed(bench, backend, "main") as earlier:
            for prefix in ("i", "l", "b"):
                earlier.add_endpoints(prefix, 10)
            for name in ("ingest", "latency", "burst"):
                attempt(name, backend, functools.partial(getattr(scenarios, name), bench, earlier))

    attempt("ceiling", "-", lambda: scenarios.ceiling(bench, data))
    attempt("celery", "-", lambda: scenarios.celery(bench, data))
    main_scenarios = [s for s in ("throughput", "ingest", "latency", "burst") if s in selected]
    for backend in bench.backends:
        if main_scenarios:
            try:
                with contextlib.ExitStack() as stack:
                    deploy = stack.enter_context(deployed(bench, backend, "main"))
                    deploy.add_endpoints("f", 10, shared_channel=True)
                    deploy.add_endpoints("s", 1, max_in_flight=scenarios.SINGLE_IN_FLIGHT)
                    deploy.add_endpoints("i", 10)
                    deploy.add_endpoints("l", 10)
                    deploy.add_endpoints("b", 10)
                    earlier = None
                    if bench.before is not None and "throughput" in selected:
                        label, env = f"before-{bench.before.commit}", bench.before.env
                        earlier = stack.enter_context(deployed(bench, backend, label, env))
                        earlier.add_endpoints("f", 10, shared_channel=True)
                        earlier.add_endpoints("s", 1, max_in_flight=scenarios.SINGLE_IN_FLIGHT)
                    run = functools.partial(scenarios.throughput, bench, deploy, earlier)
                    attempt("throughput", backend, run)
                    if earlier is not None:  # idle, but its worker polls: not beside the other scenarios
                        earlier.close()
                    attempt("ingest", backend, functools.partial(scenarios.ingest, bench, deploy))
                    attempt("latency", backend, functools.partial(scenarios.latency, bench, deploy))
                    attempt("burst", backend, functools.partial(scenarios.burst, bench, deploy))
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                failed("deploy", "deployment", backend, exc)
        before_too(
            backend, ("ingest", "drain", "latency", "burst"), functools.partial(on_one_deployment, backend)
        )
        # Issue 4's other scenarios and the noisy tenant (fairness), each then on --before's code.
        for name, scenario in (
            ("noisy", scenarios.noisy),
            ("backlog", scenarios.backlog),
            ("fairness", endpoint_scenarios.fairness),
        ):
            if name == "backlog" and backend != "postgresql":
                continue
            run = functools.partial(attempt, name, backend, functools.partial(scenario, bench, backend))
            run()
            before_too(backend, (name,), run)
        attempt("breaker", backend, lambda: endpoint_scenarios.breaker(bench, backend))  # noqa: B023
        attempt("ratelimit", backend, lambda: endpoint_scenarios.ratelimit(bench, backend))  # noqa: B023
        attempt("stats", backend, lambda: stats_scenario.stats(bench, backend))  # noqa: B023
        if backend == "postgresql":
            attempt("retention", backend, lambda: retention_scenario.retention_scenario(bench, backend))  # noqa: B023
            attempt("budget", backend, lambda: budget.budget(bench, backend))  # noqa: B023
            attempt("scaleout", backend, lambda: scaleout.scaleout(bench, backend))  # noqa: B023
    scenarios.ratios(bench)


SMOKE_NOTE = (
    "bench: SMOKE RUN (--quick): the sizes are too small for any figure to be a verdict, so rows with a"
    " target say 'smoke', not PASS or MISS; the targets are judged by the full run (python -m bench),"
    " whose figures are in docs/benchmarks.md"
)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _terminate)
    workdir = Path(tempfile.mkdtemp(prefix="hookline-bench-"))
    procs = Processes(workdir)
    dbs = pg.Databases()
    errors: list[str] = []
    backends = list(args.backends)
    if "postgresql" in backends and (problem := pg.available()):
        print(
            f"bench: PostgreSQL at {pg.SERVER_URL} is unavailable ({problem}); running without it", flush=True
        )
        backends.remove("postgresql")
    info = environment(backends)
    for key, value in info.items():
        print(f"{key}: {value}", flush=True)
    started = time.monotonic()
    busy_before, total_before = _cpu_jiffies()
    own_before = _own_cpu_seconds()
    bench: Bench | None = None
    interrupted = False
    try:
        port = free_port()
        sink_proc = procs.python("sink", "bench.sink", str(port))
        wait_until(lambda: port_open(port), 30, "the sink", [sink_proc])
        sizes = QUICK if args.quick else FULL
        if args.quick:
            print(SMOKE_NOTE, flush=True)
        info["sizes"] = sizes.name
        bench = Bench(sizes, args.quick, tuple(backends), procs, dbs, Sink(port), sink_proc)
        if args.before:
            before = bench.before = earlier_code.check_out(args.before, workdir)
            info["before"] = f"{before.commit} (--before {args.before}), beside the working tree"
        run_all(bench, args.scenarios, errors)
    except KeyboardInterrupt:
        interrupted = True
        print("\nbench: interrupted; stopping every process and dropping the databases", flush=True)
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        procs.stop_all()
        dbs.drop_all()
        if bench is not None and bench.before is not None:
            earlier_code.remove(bench.before)
        if args.keep_logs:
            print(f"bench: logs kept in {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    info["load average at end"] = _loadavg()
    info["duration"] = f"{time.monotonic() - started:.0f} s"
    busy, total = (
        now - before for now, before in zip(_cpu_jiffies(), (busy_before, total_before), strict=True)
    )
    own = (_own_cpu_seconds() - own_before) * os.sysconf("SC_CLK_TCK")
    info["machine CPU busy during the run"] = (
        f"{busy / max(total, 1) * 100:.0f} % of all cores; the harness and its children "
        f"{own / max(total, 1) * 100:.0f} %, everything else (PostgreSQL, Redis, other users) "
        f"{(busy - own) / max(total, 1) * 100:.0f} %"
    )
    if bench is not None and bench.figures:
        if args.quick:
            print("\n" + SMOKE_NOTE)
        print("\n" + text_table(bench.figures))
        if args.markdown:
            args.markdown.write_text(markdown(bench.figures, info, command))
            print(f"\nbench: markdown written to {args.markdown}")
    print(
        f"\nbench: done in {info['duration']} (load average at start {info['load average at start']}, "
        f"at end {info['load average at end']})\n"
        f"bench: machine CPU busy: {info['machine CPU busy during the run']}"
    )
    for error in errors:
        print(f"bench: ERROR {error}", file=sys.stderr)
    if interrupted:
        return 130
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
