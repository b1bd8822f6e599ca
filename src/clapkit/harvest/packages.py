"""Debian packages as harvest sources: download (``apt-get download``), read control fields, extract
(``dpkg-deb -x``, resumable) and find the copyright file (following a ``usr/share/doc/PKG`` symlink to another
package's doc directory, which is then looked for among the other packages given)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from clapkit.errors import ClapkitError
from clapkit.harvest.licences import Copyright, parse_copyright

_TIMEOUT = 3600


@dataclass
class Package:
    """One extracted package: ``root`` is the extracted tree; ``copyright`` is ``None`` until resolved."""

    name: str
    version: str
    section: str
    description: str
    deb: Path
    root: Path
    copyright_path: Path | None = None
    copyright: Copyright | None = None

    @property
    def main_archive(self) -> bool:
        """Debian main (free software); ``contrib`` is free too but depends on non-free; ``non-free`` is not."""
        return not self.section.startswith("non-free")


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> str:
    if shutil.which(cmd[0]) is None:
        raise ClapkitError(f"{what}: `{cmd[0]}` is not on PATH (a Debian system has it)")
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT, check=False, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClapkitError(f"{what}: `{' '.join(cmd)}` failed ({exc})") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        raise ClapkitError(f"{what}: `{' '.join(cmd)}` failed: {tail[0]}")
    return done.stdout


def download(names: list[str], directory: Path) -> list[Path]:
    """``apt-get download`` each package into ``directory`` (skipping ones already there); the .deb paths."""
    directory.mkdir(parents=True, exist_ok=True)
    debs = []
    for name in names:
        have = sorted(directory.glob(f"{name}_*.deb"))
        if not have:
            _run(["apt-get", "download", name], f"apt-get download {name}", cwd=directory)
            have = sorted(directory.glob(f"{name}_*.deb"))
        if not have:
            raise ClapkitError(f"{name}: apt-get download left no {name}_*.deb in {directory}")
        debs.append(have[-1])
    return debs


def control_fields(deb: Path) -> dict[str, str]:
    text = _run(["dpkg-deb", "-f", str(deb)], str(deb))
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and key:
            continue  # long description lines
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip()
            fields[key] = value.strip()
    return fields


def extract(deb: Path, work: Path) -> Package:
    """Extract ``deb`` into ``work/<deb stem>/`` once (a ``.extracted`` marker makes re-runs skip it; a crash leaves
    only a ``.partial`` directory, removed on the next try)."""
    fields = control_fields(deb)
    if "Package" not in fields:
        raise ClapkitError(f"{deb}: no Package field in its control file; not a Debian package?")
    stem = deb.name[: -len(".deb")] if deb.name.endswith(".deb") else deb.name
    root, marker, partial = work / stem, work / f"{stem}.extracted", work / f"{stem}.partial"
    if not marker.exists():
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        partial.mkdir(parents=True)
        _run(["dpkg-deb", "-x", str(deb), str(partial)], str(deb))
        partial.rename(root)
        marker.touch()
    return Package(name=fields["Package"], version=fields.get("Version", ""), section=fields.get("Section", ""),
                   description=fields.get("Description", ""), deb=deb, root=root)


def resolve_copyrights(packages: list[Package]) -> None:
    """Set ``copyright_path``/``copyright`` of each package: its own ``usr/share/doc/NAME/copyright``, or, when
    ``usr/share/doc/NAME`` is a symlink to another package's doc directory, that package's file (searched in the
    other given packages' trees)."""
    trees = {p.name: p.root for p in packages}
    for package in packages:
        doc = package.root / "usr" / "share" / "doc" / package.name
        candidates = [doc / "copyright"]
        if doc.is_symlink():
            target = Path(doc.readlink()).name
            candidates += [trees[t] / "usr/share/doc" / target / "copyright" for t in (target,) if t in trees]
            candidates += [root / "usr/share/doc" / target / "copyright" for root in trees.values()]
        for candidate in candidates:
            if candidate.is_file() and not candidate.is_symlink():
                package.copyright_path = candidate
                package.copyright = parse_copyright(candidate.read_text(encoding="utf-8", errors="replace"))
                break
