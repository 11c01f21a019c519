"""hookline_receiver stands alone: importing it loads nothing but the standard library, and the
``hookline-receiver`` distribution (``receiver/``) builds into a wheel that installs and verifies in a
fresh virtualenv holding nothing else."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "hookline_receiver"

# Verifies one delivery signed by hand (what hookline sends), then reports any module that is neither
# the standard library's nor the package's own.
SCRIPT = textwrap.dedent(
    """
    import base64, hashlib, hmac, json, sys, time
    import hookline_receiver
    from hookline_receiver import verify

    secret = "whsec_" + base64.b64encode(b"k" * 24).decode()
    body, stamp = b'{"id":"evt_1","event":"a.b","data":{"n":1}}', str(int(time.time()))
    mac = hmac.new(b"k" * 24, f"evt_1.{stamp}.".encode() + body, hashlib.sha256).digest()
    headers = {"webhook-id": "evt_1", "webhook-timestamp": stamp,
               "webhook-signature": "v1," + base64.b64encode(mac).decode()}
    event = verify(body, headers, secret)
    assert (event.id, event.type, event.data) == ("evt_1", "a.b", {"n": 1}), event
    stdlib = set(sys.stdlib_module_names) | {"hookline_receiver", "__main__", "_distutils_hack"}
    foreign = sorted(m for m in sys.modules if m.split(".")[0] not in stdlib)
    print(json.dumps({"file": hookline_receiver.__file__, "foreign": foreign}))
    """
)


def run(python: str | Path, *, env: dict[str, str], cwd: Path) -> dict[str, object]:
    done = subprocess.run(
        [str(python), "-c", SCRIPT], env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    import json

    result: dict[str, object] = json.loads(done.stdout)
    return result


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return env | extra


def test_importing_loads_only_the_standard_library(tmp_path: Path) -> None:
    # Run by the test interpreter, whose site-packages hold the whole server: nothing of it comes along.
    result = run(sys.executable, env=clean_env(PYTHONPATH=str(SOURCE.parent)), cwd=tmp_path)
    assert result["foreign"] == []
    assert str(result["file"]).startswith(str(SOURCE))


def test_receiver_distribution_metadata() -> None:
    project = tomllib.loads((ROOT / "receiver" / "pyproject.toml").read_text())
    assert project["project"]["name"] == "hookline-receiver"
    assert project["project"]["dependencies"] == []
    assert project["tool"]["setuptools"]["packages"] == ["hookline_receiver"]
    server = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["version"] == server["project"]["version"]


def test_the_wheel_installs_and_verifies_in_a_fresh_venv(tmp_path: Path) -> None:
    # Build from a copy (an in-tree build leaves build/ and egg-info behind), as `pip wheel ./receiver`.
    shutil.copytree(ROOT / "receiver", tmp_path / "repo" / "receiver")
    shutil.copytree(
        SOURCE, tmp_path / "repo" / "src" / "hookline_receiver", ignore=shutil.ignore_patterns("__pycache__")
    )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(tmp_path / "repo" / "receiver")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if built.returncode != 0:
        pytest.fail(
            f"building the receiver wheel failed (it needs setuptools from the index):\n{built.stderr}"
        )
    [wheel] = (tmp_path / "dist").glob("hookline_receiver-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert {n.split("/")[0] for n in names if not n.startswith("hookline_receiver-")} == {"hookline_receiver"}
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert requires and all("extra ==" in line for line in requires)  # nothing without an extra

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # No index: the install would fail if the wheel needed anything else.
    subprocess.run(
        [*pip, "--python", str(python), "install", "--no-index", str(wheel)], check=True, timeout=120
    )
    result = run(python, env=clean_env(), cwd=tmp_path)
    assert result["foreign"] == []
    assert str(result["file"]).startswith(str(venv))
    for server_module in ("hookline", "fastapi", "sqlalchemy", "pydantic", "orjson"):
        missing = subprocess.run(
            [str(python), "-c", f"import {server_module}"], env=clean_env(), cwd=tmp_path
        )
        assert missing.returncode != 0, f"{server_module} is importable in the receiver's venv"
