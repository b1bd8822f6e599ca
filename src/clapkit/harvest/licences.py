"""Debian copyright files: the licence short names (DEP-5) and which one covers a given installed file.

DEP-5 (machine-readable) files have ``Files:`` paragraphs with glob patterns over the SOURCE tree and a ``License:``
short name; later paragraphs override earlier ones. Installed paths differ from source paths
(``usr/share/games/foo/sounds/a.ogg`` vs ``data/sounds/a.ogg``), so a pattern matches an installed path when it
matches any tail of it (``sounds/a.ogg``, ``a.ogg``, ...). Files that are not DEP-5 get a summary of the licence
names found in the text (``GPL-2+``, ``CC-BY-SA-3.0``, ...), or ``see copyright``.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

# licence families whose terms allow redistribution and modification (Debian main); anything else is flagged
_FREE_HINTS = ("gpl", "lgpl", "bsd", "mit", "expat", "cc-by", "cc0", "public", "apache", "zlib", "isc", "mpl",
               "artistic", "cddl", "ofl", "wtfpl", "unlicense", "permissive", "x11", "boost", "bsl", "gfdl", "free")
_TEXT_LICENCES = (
    (r"\bGNU (?:Lesser|Library) General Public License\b[^.]{0,80}?version (\d(?:\.\d)?)", "LGPL-{0}"),
    (r"\bGNU General Public License\b[^.]{0,80}?version (\d(?:\.\d)?)", "GPL-{0}"),
    (r"\bCreative Commons Attribution[- ]Share[- ]?Alike\b[^.]{0,30}?(\d\.\d)", "CC-BY-SA-{0}"),
    (r"\bCreative Commons Attribution\b(?![- ]Share)[^.]{0,30}?(\d\.\d)", "CC-BY-{0}"),
    (r"\b(CC0|public domain)\b", "{0}"),
    (r"\b(?:the )?(MIT|BSD|zlib|Apache) licen[cs]e\b", "{0}"),
    (r"\b((?:L?GPL|CC-BY(?:-SA)?)-?[\d.]+\+?)", "{0}"),
)


@dataclass
class Copyright:
    """A parsed copyright file: ``paragraphs`` are ``(patterns, licence)`` in file order; ``summary`` lists every
    licence short name once."""

    text: str
    dep5: bool
    paragraphs: list[tuple[tuple[str, ...], str]] = field(default_factory=list)
    summary: str = ""

    def licence_of(self, installed_path: str) -> str:
        """The licence of the last ``Files:`` paragraph matching ``installed_path`` (a tail of it), else the
        package's ``Files: *`` licence, else the summary."""
        tails = _tails(installed_path)
        chosen = ""
        for patterns, licence in self.paragraphs:
            if patterns == ("*",):
                chosen = licence
                continue
            if any(fnmatch.fnmatchcase(tail, p) for p in _pattern_tails(patterns) for tail in tails):
                chosen = licence
        return chosen or self.summary or "see copyright"

    @property
    def free(self) -> bool:
        """True when every licence name is a known free-software / free-culture family (or the package is in Debian
        main, which the caller checks separately)."""
        names = [n for n in re.split(r"[;,]| or | and ", self.summary.lower()) if n.strip()]
        return bool(names) and all(any(h in n for h in _FREE_HINTS) for n in names)


def _pattern_tails(patterns: tuple[str, ...]) -> list[str]:
    """``data/sounds/rain*`` also as ``sounds/rain*`` (the install drops source directories), never shorter than
    two components, so ``debian/*`` does not become ``*``."""
    out = []
    for pattern in patterns:
        parts = pattern.strip("/").split("/")
        out += ["/".join(parts[i:]) for i in range(max(1, len(parts) - 1)) if "/".join(parts[i:]) != "*"]
    return out


def _tails(path: str) -> list[str]:
    parts = [p for p in path.strip("/").split("/") if p]
    return ["/".join(parts[i:]) for i in range(len(parts))]


def parse_copyright(text: str) -> Copyright:
    """Parse a Debian copyright file (DEP-5 or free text)."""
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    dep5 = first.lower().startswith("format:") and "copyright-format" in first.lower()
    result = Copyright(text=text, dep5=dep5)
    names: list[str] = []
    if dep5:
        for block in re.split(r"\n\s*\n", text):
            fields = _fields(block)
            licence = fields.get("license", "").splitlines()[0].strip() if fields.get("license") else ""
            if licence and licence not in names:
                names.append(licence)
            if "files" in fields and licence:
                result.paragraphs.append((tuple(fields["files"].split()), licence))
    if not names:
        for pattern, template in _TEXT_LICENCES:
            for match in re.finditer(pattern, text, flags=re.IGNORECASE):
                name = template.format(*match.groups())
                if name.lower() == "public domain":
                    name = "public-domain"
                if name not in names:
                    names.append(name)
    result.summary = "; ".join(names)
    return result


def _fields(block: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in block.splitlines():
        if line.startswith(("#",)):
            continue
        if line[:1] in (" ", "\t") and key is not None:
            fields[key] += "\n" + line.strip()
            continue
        name, sep, value = line.partition(":")
        if sep and name and " " not in name:
            key = name.strip().lower()
            fields[key] = value.strip()
    return fields
