"""Child processes of the harness: start, wait until ready, read CPU and memory from /proc, stop.

Every process is started in its own session (so Ctrl-C in the terminal reaches only the harness, which
then stops its children in order) and with PR_SET_PDEATHSIG, so even a SIGKILLed harness leaves no
orphan behind. ``Processes.stop_all()`` is called from the harness's ``finally``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(c) for c in f.read().split())
    return found


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(_children(current))
    return out


def stat_fields(path: str) -> list[str] | None:
    """The fields of a ``/proc/<pid>/stat`` (or ``/proc/<pid>/task/<tid>/stat``) after the command name,
    so that field 4 (the parent) is ``[1]`` and utime ``[11]``; None when the process is gone."""
    try:
        with open(path) as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces


def cpu_times(path: str) -> tuple[float, float]:
    """(utime + stime, cutime + cstime) in seconds from a stat file: the process's (or thread's) own
    time and that of its reaped children; zeros when it is gone."""
    fields = stat_fields(path)
    if fields is None:
        return 0.0, 0.0
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime) / CLOCK_TICKS, (cutime + cstime) / CLOCK_TICKS


def cpu_seconds_of(pid: int) -> float:
    """utime + stime of ``pid`` plus those of its reaped children (cutime + cstime), in seconds."""
    return sum(cpu_times(f"/proc/{pid}/stat"))


def _status_kb(pid: int, key: str) -> int:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


@dataclass(frozen=True)
class Usage:
    returncode: int
    cpu_seconds: float
    peak_rss_mb: float


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    started_at: float = field(default_factory=time.time)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_seconds(self) -> float:
        """CPU time of the process and of all its descendants, alive or reaped."""
        return sum(cpu_seconds_of(p) for p in descendants(self.pid))

    def peak_rss_mb(self) -> float:
        """VmHWM (peak resident set) in MB; summed over the process tree (Celery's prefork children)."""
        return sum(_status_kb(p, "VmHWM") for p in descendants(self.pid)) / 1024

    def reset_peak_rss(self) -> None:
        """Start a new peak-RSS window (Linux: writing 5 to clear_refs resets VmHWM to the current RSS)."""
        for pid in descendants(self.pid):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")

    def finish(self, timeout: float) -> Usage:
        """Wait for a process that ends by itself and return its exit code, CPU time and peak RSS (from
        wait4's rusage: the figures of a process that is gone)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.returncode is not None:  # already reaped elsewhere: no usage to read
                return Usage(self.popen.returncode, 0.0, 0.0)
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.popen.returncode = os.waitstatus_to_exitcode(status)
                return Usage(self.popen.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)
            if time.monotonic() > deadline:
                raise ProcessFailed(f"{self.name} did not finish within {timeout:g} s:\n{self.tail()}")
            time.sleep(0.02)

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


class ProcessFailed(RuntimeError):
    pass


class Processes:
    """Owns every child process of a run; logs go to ``workdir/<name>.log``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: list[Proc] = []

    def start(
        self, name: str, argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> Proc:
        log = self.workdir / f"{name}.log"
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # the harness starts no threads, so this is safe
            )
        proc = Proc(name, popen, log)
        self.running.append(proc)
        return proc

    def python(self, name: str, module: str, *args: str, env: dict[str, str] | None = None) -> Proc:
        """Start ``python -m module args...`` with this interpreter (bench/ importable from the cwd)."""
        root = str(Path(__file__).resolve().parent.parent)
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        return self.start(
            name, [sys.executable, "-m", module, *args], env={"PYTHONPATH": path, **(env or {})}
        )

    def stop(self, proc: Proc, timeout: float = 15.0) -> int | None:
        """SIGTERM the process group, SIGKILL what is left after ``timeout``; returns the exit code."""
        if proc in self.running:
            self.running.remove(proc)
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.popen.wait(5)
        # Whatever the group leader left behind (e.g. Celery pool children) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.popen.returncode

    def forget(self, proc: Proc) -> None:
        """A process that has ended by itself (and was reaped) needs no stopping."""
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.running)):
            with contextlib.suppress(Exception):
                self.stop(proc, timeout=5.0)


def wait_until(check: Callable[[], bool], timeout: float, what: str, procs: Sequence[Proc] = ()) -> None:
    """Poll ``check`` until true; fail early (with the log tail) if one of ``procs`` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, ValueError):
            if check():
                return
        for proc in procs:
            if not proc.alive():
                raise ProcessFailed(
                    f"{proc.name} exited ({proc.popen.returncode}) while waiting for {what}:\n{proc.tail()}"
                )
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}:\n{p.tail()}" for p in procs)
            raise ProcessFailed(f"timed out after {timeout:g} s waiting for {what}\n{tails}")
        time.sleep(0.05)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
