"""Vendor the dashboard's front-end assets from the npm registry, pinned: Pico CSS, htmx and uPlot.

Why vendored: the dashboard and the tenant portal (``hookline.dashboard``, under /ui) are served by the
hookline process itself and installed with pip alone, so there is no Node.js and no build step at install
time. The few minified files the pages need are committed into the package
(``src/hookline/dashboard/static/vendor``) and ship in the wheel (``[tool.setuptools.package-data]``).
This script is how they got there, and how they are re-vendored; only it writes that directory.

What it does, for each package of ``PACKAGES``: ``npm pack <name>@<version>`` into a temporary directory
(npm downloads the registry's tarball, nothing is installed and no package script runs); checks the
tarball's sha512 -- computed here from the file, and as npm reports it -- against the integrity pinned
below, so a re-vendor cannot silently change content; extracts only the listed files and the package's
license file into ``static/vendor/<directory>/``; then writes ``static/vendor/VERSIONS.json`` (each
package's name, version, integrity and license, each kept file's path, size and sha256) and removes any
file under ``static/vendor`` that is no longer listed. Nothing is written unless every package checks
out. Running it twice leaves identical files (it says which it wrote and which were unchanged).
tests/test_vendored_assets.py checks the committed files against VERSIONS.json and VERSIONS.json against
this table, without the network.

    python scripts/vendor_dashboard_assets.py            # re-vendor; fails on any integrity mismatch
    python scripts/vendor_dashboard_assets.py --update   # print new integrities instead of failing

To bump a version: change ``version`` in ``PACKAGES`` (check that the kept paths still exist in the new
tarball: ``npm pack <name>@<version> --dry-run``), run with ``--update``, paste the integrity it prints
into ``integrity``, run again without ``--update`` (it must pass), run tests/test_vendored_assets.py,
and commit the table, the files and VERSIONS.json together. The integrity npm reports can be
cross-checked with ``npm view <name>@<version> dist.integrity``.

The choices:

- ``@picocss/pico`` 2.x: only ``css/pico.min.css``, the default (azure) build with classes. Pico 2 ships
  no separate RTL build: every build carries its right-to-left rules, keyed on ``[dir=rtl]`` (set
  ``<html dir="rtl">``), for form controls' icons, date inputs, accordions, dropdowns, breadcrumbs and
  the indeterminate progress bar, and uses logical properties in a few places. It does not flip
  everything (the grouped inputs of ``role=group``/``role=search``, the modal's close button and
  footer, the nav's edge margins and ``.container``'s padding stay physical), so an RTL page needs a
  few overrides of the dashboard's own. Its themes are ``data-theme="light"|"dark"`` on any element,
  else the user's ``prefers-color-scheme``, and all of it is CSS custom properties (``--pico-*``),
  which is how the app themes it (a tenant's colours). Not kept: the classless builds (the dashboard
  needs ``.container``, ``.grid`` and the other classes), the ``conditional`` builds (scoped to a
  ``.pico`` class; only useful if the portal were injected into a host's own page rather than framed
  or linked), the 19 colour builds (one custom property each, which the theme sets anyway),
  ``pico.colors.min.css`` (colour utility classes) and the SCSS sources.
- ``htmx.org`` 2.x: ``dist/htmx.min.js`` (the npm ``latest`` tag is htmx 4 now; 2.x is the line we
  pin). The extensions under ``dist/ext`` are not kept (htmx 2's own live in ``htmx-ext-*`` packages).
- ``uplot`` 1.6.x: ``dist/uPlot.iife.min.js`` (a plain script defining ``uPlot``) and
  ``dist/uPlot.min.css``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "src" / "hookline" / "dashboard" / "static" / "vendor"
VERSIONS = VENDOR / "VERSIONS.json"


@dataclass(frozen=True)
class Package:
    name: str  # on the npm registry
    version: str  # exact
    integrity: str  # the registry tarball's, as npm reports it (dist.integrity): "sha512-<base64>"
    directory: str  # under static/vendor
    files: dict[str, str]  # path in the package -> path under static/vendor/<directory>
    license: str  # the license file's path in the package (kept under its own name)


PACKAGES: tuple[Package, ...] = (
    Package(
        name="@picocss/pico",
        version="2.1.1",
        integrity="sha512-kIDugA7Ps4U+2BHxiNHmvgPIQDWPDU4IeU6TNRdvXQM1uZX+FibqDQT2xUOnnO2yq/LUHcwnGlu1hvf4KfXnMg==",
        directory="pico",
        files={"css/pico.min.css": "pico.min.css"},
        license="LICENSE.md",
    ),
    Package(
        name="htmx.org",
        version="2.0.11",
        integrity="sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA==",
        directory="htmx",
        files={"dist/htmx.min.js": "htmx.min.js"},
        license="LICENSE",
    ),
    Package(
        name="uplot",
        version="1.6.32",
        integrity="sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==",
        directory="uplot",
        files={"dist/uPlot.iife.min.js": "uPlot.iife.min.js", "dist/uPlot.min.css": "uPlot.min.css"},
        license="LICENSE",
    ),
)


class VendorError(Exception):
    pass


@dataclass(frozen=True)
class Fetched:
    package: Package
    integrity: str  # of the tarball downloaded
    license_id: str  # package.json's "license"
    contents: dict[str, bytes]  # path under static/vendor -> bytes
    sources: dict[str, str]  # path under static/vendor -> path in the package


def sha512_integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def npm_pack(package: Package, into: Path) -> tuple[Path, str]:
    """The package's registry tarball, downloaded by ``npm pack`` into ``into``, and the integrity npm
    reports for it."""
    npm = shutil.which("npm")
    if npm is None:
        raise VendorError(
            "npm is not on PATH (Node.js and npm are needed to vendor, not to install hookline)"
        )
    spec = f"{package.name}@{package.version}"
    done = subprocess.run(  # noqa: S603 (a fixed command; the spec comes from the table above)
        [npm, "pack", spec, "--json", "--ignore-scripts", "--pack-destination", str(into)],
        cwd=into,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise VendorError(f"npm pack {spec} failed ({done.returncode}):\n{done.stderr.strip()}")
    try:
        [report] = json.loads(done.stdout)
        return into / report["filename"], report["integrity"]
    except (ValueError, KeyError, TypeError) as e:
        raise VendorError(f"npm pack {spec}: unexpected --json output: {done.stdout[:500]!r}") from e


def read_members(tarball: bytes, wanted: set[str]) -> dict[str, bytes]:
    """The regular files ``wanted`` (paths in the package, i.e. below the tarball's top directory, which is
    ``package/`` for registry tarballs) read from the tarball; nothing is extracted to disk."""
    found: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        for member in tar.getmembers():
            _, _, path = member.name.partition("/")
            if path in wanted and member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                found[path] = extracted.read()
    return found


def fetch(package: Package, tmp: Path, update: bool) -> Fetched:
    spec = f"{package.name}@{package.version}"
    tarball_path, reported = npm_pack(package, tmp)
    tarball = tarball_path.read_bytes()
    integrity = sha512_integrity(tarball)
    if integrity != reported:
        raise VendorError(f"{spec}: npm reports integrity {reported} but the tarball's sha512 is {integrity}")
    if integrity != package.integrity:
        if not update:
            raise VendorError(
                f"{spec}: integrity {integrity} is not the pinned {package.integrity or '(none)'}; "
                "if the version was bumped on purpose, run with --update and pin the new integrity"
            )
        print(f"{spec}: NEW integrity (pin it in PACKAGES): {integrity}")
    else:
        print(f"{spec}: integrity ok ({integrity[:23]}...)")

    wanted = {*package.files, package.license, "package.json"}
    members = read_members(tarball, wanted)
    missing = sorted(wanted - members.keys())
    if missing:
        raise VendorError(f"{spec}: not in the tarball: {', '.join(missing)}")
    manifest = json.loads(members["package.json"])
    if (manifest.get("name"), manifest.get("version")) != (package.name, package.version):
        raise VendorError(
            f"{spec}: the tarball's package.json is {manifest.get('name')}@{manifest.get('version')}"
        )

    sources = {f"{package.directory}/{dest}": src for src, dest in package.files.items()}
    sources[f"{package.directory}/{Path(package.license).name}"] = package.license
    contents = {dest: members[src] for dest, src in sources.items()}
    return Fetched(package, integrity, str(manifest.get("license", "")), contents, sources)


def versions_json(fetched: list[Fetched]) -> str:
    packages = []
    for f in fetched:
        files = [
            {
                "path": path,
                "source": f.sources[path],
                "size": len(f.contents[path]),
                "sha256": hashlib.sha256(f.contents[path]).hexdigest(),
            }
            for path in sorted(f.contents)
        ]
        packages.append(
            {
                "name": f.package.name,
                "version": f.package.version,
                "integrity": f.integrity,
                "license": f.license_id,
                "directory": f.package.directory,
                "files": files,
            }
        )
    document = {
        "generated_by": "scripts/vendor_dashboard_assets.py (do not edit by hand; re-run it)",
        "packages": packages,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` unless it holds that already; whether it wrote."""
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def vendor(update: bool = False) -> None:
    directories = [p.directory for p in PACKAGES]
    if len(set(directories)) != len(directories):
        raise VendorError(f"two packages share a directory: {directories}")
    with tempfile.TemporaryDirectory(prefix="hookline-vendor-") as tmp:
        fetched = [fetch(package, Path(tmp), update) for package in PACKAGES]

    outputs = {path: data for f in fetched for path, data in f.contents.items()}
    outputs[VERSIONS.name] = versions_json(fetched).encode("utf-8")
    for path, data in outputs.items():
        wrote = write(VENDOR / path, data)
        print(f"  {'wrote    ' if wrote else 'unchanged'} {path} ({len(data):,} bytes)")
    for path in sorted(VENDOR.rglob("*"), reverse=True):  # files before the directories holding them
        relative = path.relative_to(VENDOR).as_posix()
        if path.is_dir():
            if not any(path.iterdir()):
                path.rmdir()
        elif relative not in outputs:
            path.unlink()
            print(f"  removed   {relative} (no longer listed)")
    print(f"{len(PACKAGES)} packages, {len(outputs) - 1} files in {VENDOR.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--update",
        action="store_true",
        help="print the integrity of a tarball that does not match the pinned one instead of failing "
        "(after bumping a version; then pin it)",
    )
    args = parser.parse_args(argv)
    try:
        vendor(update=args.update)
    except VendorError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
