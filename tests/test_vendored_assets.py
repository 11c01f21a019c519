"""The dashboard's vendored front-end assets (src/hookline/dashboard/static/vendor), without the network:
each file is the one VERSIONS.json records (sha256), nothing unlisted is there, every package has its
license file, and VERSIONS.json matches the pinned table of scripts/vendor_dashboard_assets.py (which
wrote it). The checks are functions of a directory, so they are also shown to catch a tampered copy."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "src" / "hookline" / "dashboard" / "static" / "vendor"
SCRIPT = ROOT / "scripts" / "vendor_dashboard_assets.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vendor_dashboard_assets", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def load_versions(vendor: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((vendor / "VERSIONS.json").read_text(encoding="utf-8"))
    return document


def listed(versions: dict[str, Any]) -> dict[str, str]:
    """Path under static/vendor -> sha256, of every file VERSIONS.json lists."""
    return {f["path"]: f["sha256"] for p in versions["packages"] for f in p["files"]}


def mismatches(vendor: Path, versions: dict[str, Any]) -> list[str]:
    """The listed files that are missing or whose sha256 is not the recorded one."""
    problems = []
    for path, sha256 in listed(versions).items():
        file = vendor / path
        if not file.is_file():
            problems.append(f"{path}: missing")
        elif hashlib.sha256(file.read_bytes()).hexdigest() != sha256:
            problems.append(f"{path}: sha256 differs from VERSIONS.json")
    return problems


def unlisted(vendor: Path, versions: dict[str, Any]) -> list[str]:
    """Files under static/vendor that VERSIONS.json does not list (VERSIONS.json aside)."""
    present = {p.relative_to(vendor).as_posix() for p in vendor.rglob("*") if not p.is_dir()}
    return sorted(present - listed(versions).keys() - {"VERSIONS.json"})


@pytest.fixture(scope="module")
def versions() -> dict[str, Any]:
    return load_versions(VENDOR)


def test_vendored_files_have_their_recorded_sha256(versions: dict[str, Any]) -> None:
    assert len(listed(versions)) >= 4
    assert mismatches(VENDOR, versions) == []


def test_nothing_unlisted_under_vendor(versions: dict[str, Any]) -> None:
    assert unlisted(VENDOR, versions) == []


def test_the_checks_catch_a_tampered_copy(tmp_path: Path, versions: dict[str, Any]) -> None:
    copy = tmp_path / "vendor"
    shutil.copytree(VENDOR, copy)
    assert mismatches(copy, versions) == [] and unlisted(copy, versions) == []

    js = copy / "htmx" / "htmx.min.js"
    js.write_bytes(js.read_bytes().replace(b"htmx", b"HTMX", 1))  # one edited byte
    (copy / "uplot" / "uPlot.min.css").unlink()
    (copy / "htmx" / "htmx-ext-extra.js").write_text("// unlisted\n")
    (copy / "new-package").mkdir()
    (copy / "new-package" / "lib.js").write_text("// unlisted\n")

    assert mismatches(copy, versions) == [
        "htmx/htmx.min.js: sha256 differs from VERSIONS.json",
        "uplot/uPlot.min.css: missing",
    ]
    assert unlisted(copy, versions) == ["htmx/htmx-ext-extra.js", "new-package/lib.js"]


def test_versions_json_matches_the_scripts_pinned_table(versions: dict[str, Any]) -> None:
    script = load_script()
    pinned = [
        {
            "name": p.name,
            "version": p.version,
            "integrity": p.integrity,
            "directory": p.directory,
            "files": sorted(
                [(f"{p.directory}/{dest}", src) for src, dest in p.files.items()]
                + [(f"{p.directory}/{Path(p.license).name}", p.license)]
            ),
        }
        for p in script.PACKAGES
    ]
    recorded = [
        {
            "name": p["name"],
            "version": p["version"],
            "integrity": p["integrity"],
            "directory": p["directory"],
            "files": sorted((f["path"], f["source"]) for f in p["files"]),
        }
        for p in versions["packages"]
    ]
    assert recorded == pinned
    assert {p.name for p in script.PACKAGES} == {"@picocss/pico", "htmx.org", "uplot"}
    for p in script.PACKAGES:
        assert p.integrity.startswith("sha512-"), p.name
        assert all(part.isdigit() for part in p.version.split(".")), f"{p.name}: pin an exact release"
    # The VERSIONS.json the script would write from these files is the committed one, byte for byte.
    fetched = [
        script.Fetched(
            package=p,
            integrity=r["integrity"],
            license_id=r["license"],
            contents={f["path"]: (VENDOR / f["path"]).read_bytes() for f in r["files"]},
            sources={f["path"]: f["source"] for f in r["files"]},
        )
        for p, r in zip(script.PACKAGES, versions["packages"], strict=True)
    ]
    assert script.versions_json(fetched) == (VENDOR / "VERSIONS.json").read_text(encoding="utf-8")


def test_each_package_directory_holds_its_license(versions: dict[str, Any]) -> None:
    for package in versions["packages"]:
        assert package["license"], package["name"]
        licenses = [
            f["path"]
            for f in package["files"]
            if Path(f["path"]).name.upper().startswith(("LICENSE", "LICENCE"))
        ]
        assert len(licenses) == 1, package["name"]
        [license_path] = licenses
        assert Path(license_path).parent.as_posix() == package["directory"]
        text = (VENDOR / license_path).read_text(encoding="utf-8")
        assert "copyright" in text.lower() or "permission" in text.lower(), license_path


def test_the_wheel_takes_the_dashboards_files() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs = data["tool"]["setuptools"]["package-data"]["hookline"]
    assert {"dashboard/static/**/*", "dashboard/templates/**/*", "dashboard/locales/**/*"} <= set(globs)
    assert (VENDOR.parent.parent / "__init__.py").is_file()  # hookline.dashboard is a package
