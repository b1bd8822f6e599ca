"""Archives that game and education packages keep their sounds in, read member by member (nothing is unpacked to
disk):

- **zip** (``.zip``/``.pk3``/``.pk4``/``.wz``, ``.pak`` when it is a zip), with ``zipfile``;
- **Qt resource bundles** (``.rcc``: GCompris' activities), the ``qres`` format: a header (magic, version, offsets of
  the tree, the data and the names), a tree of 14-byte (v1) or 22-byte (v2, v3) nodes, names as UTF-16BE, data
  blocks with a 4-byte size, zlib-compressed ones with Qt's 4-byte length before the stream (zstd ones are reported);
- **Clonk groups** (``.ocg``/``.ocd``/``.ocf``/``.ocs``/``.c4g``: OpenClonk's content), a gzip stream whose two magic
  bytes are changed (``1e 8c``); inside, a 204-byte header (XOR 237, then every 3-byte run reversed) naming the entry
  count, 316-byte entries (name, packed flag, child-group flag, size, offset) and the data; child groups nest
  uncompressed.

Every reader raises :class:`ArchiveError` with the cause on a damaged archive, so the harvester skips it with the
reason and goes on.
"""

from __future__ import annotations

import gzip
import struct
import zipfile
import zlib
from pathlib import Path

ZIP_SUFFIXES = (".zip", ".pk3", ".pk4", ".wz", ".pak")
RCC_SUFFIXES = (".rcc",)
CLONK_SUFFIXES = (".ocg", ".ocd", ".ocf", ".ocs", ".c4g", ".c4d", ".c4f", ".c4s")
ARCHIVE_SUFFIXES = ZIP_SUFFIXES + RCC_SUFFIXES + CLONK_SUFFIXES
_CLONK_MAGIC = b"RedWolf Design GrpFolder"
_CLONK_HEADER, _CLONK_ENTRY = 204, 316


class ArchiveError(Exception):
    """A damaged or unsupported archive (the message says what is wrong)."""


def kind(path: str | Path) -> str | None:
    """``"zip"``, ``"rcc"``, ``"clonk"`` or ``None`` (not an archive, or a ``.pak`` in a game's own format)."""
    suffix = Path(path).suffix.lower()
    if suffix in RCC_SUFFIXES:
        return "rcc"
    if suffix in CLONK_SUFFIXES:
        return "clonk"
    if suffix in ZIP_SUFFIXES:
        return "zip" if zipfile.is_zipfile(path) else None
    return None


def members(path: str | Path) -> dict[str, int]:
    """Every file member of the archive at ``path`` and its (uncompressed, where known) size, in name order."""
    found = _index(str(path))
    return {name: size for name, size in sorted(found.sizes.items())}


def read_member(path: str | Path, member: str) -> bytes:
    """The bytes of one member (the archive's index is kept per process, so reading many members is cheap)."""
    index = _index(str(path))
    if member not in index.sizes:
        raise ArchiveError(f"{path}: no member {member!r}")
    return index.read(member)


class _Index:
    def __init__(self, sizes: dict[str, int], read):
        self.sizes = sizes
        self.read = read


_cache: dict[str, _Index] = {}


def _index(path: str) -> _Index:
    if path not in _cache:
        if len(_cache) >= 4:  # a worker reads archives in path order: keep the last few only (Clonk groups are
            _cache.pop(next(iter(_cache)))  # held decompressed)
        what = kind(path)
        try:
            if what == "zip":
                _cache[path] = _zip(path)
            elif what == "rcc":
                _cache[path] = _rcc(Path(path).read_bytes(), path)
            elif what == "clonk":
                _cache[path] = _clonk(Path(path).read_bytes(), path)
            else:
                raise ArchiveError(f"{path}: not an archive clapkit reads (zip, Qt .rcc, Clonk group)")
        except (OSError, zipfile.BadZipFile, zlib.error, EOFError, struct.error, UnicodeDecodeError) as exc:
            raise ArchiveError(f"{path}: unreadable archive ({type(exc).__name__}: {exc})") from None
    return _cache[path]


def _zip(path: str) -> _Index:
    archive = zipfile.ZipFile(path)
    sizes = {i.filename: i.file_size for i in archive.infolist() if not i.is_dir()}
    return _Index(sizes, archive.read)


def _rcc(buf: bytes, path: str) -> _Index:
    if buf[:4] != b"qres" or len(buf) < 20:
        raise ArchiveError(f"{path}: not a Qt resource file (no 'qres' header)")
    version, tree, data, names = struct.unpack(">IIII", buf[4:20])
    if version not in (1, 2, 3):
        raise ArchiveError(f"{path}: Qt resource format version {version} is not supported (1-3 are)")
    node = 14 if version == 1 else 22
    entries: dict[str, tuple[int, int, int]] = {}  # name -> (flags, offset of the data, stored size)

    def name_at(offset: int) -> str:
        (length,) = struct.unpack(">H", buf[names + offset: names + offset + 2])
        return buf[names + offset + 6: names + offset + 6 + 2 * length].decode("utf-16-be")

    def walk(i: int, prefix: str, depth: int) -> None:
        if depth > 64:
            raise ArchiveError(f"{path}: the resource tree is nested too deep (damaged?)")
        at = tree + i * node
        name_offset, flags = struct.unpack(">IH", buf[at: at + 6])
        name = name_at(name_offset) if i else ""
        if flags & 2:  # a directory
            count, first = struct.unpack(">II", buf[at + 6: at + 14])
            if tree + (first + count) * node > len(buf):
                raise ArchiveError(f"{path}: a directory points past the resource tree (damaged?)")
            for child in range(count):
                walk(first + child, f"{prefix}{name}/" if name else prefix, depth + 1)
            return
        (offset,) = struct.unpack(">I", buf[at + 10: at + 14])
        (size,) = struct.unpack(">I", buf[data + offset: data + offset + 4])
        if data + offset + 4 + size > len(buf):
            raise ArchiveError(f"{path}: member {prefix}{name} runs past the end of the file (truncated?)")
        entries[prefix + name] = (flags, data + offset + 4, size)

    walk(0, "", 0)

    def read(member: str) -> bytes:
        flags, offset, size = entries[member]
        raw = buf[offset: offset + size]
        if flags & 4:
            raise ArchiveError(f"{path}: member {member} is zstd-compressed (not supported)")
        if flags & 1:
            try:
                return zlib.decompress(raw[4:])
            except zlib.error as exc:
                raise ArchiveError(f"{path}: member {member}: damaged zlib data ({exc})") from None
        return raw

    sizes = {name: (struct.unpack(">I", buf[o: o + 4])[0] if f & 1 and s >= 4 else s)
             for name, (f, o, s) in entries.items()}
    return _Index(sizes, read)


def _unscramble(header: bytes) -> bytes:
    out = bytearray(b ^ 237 for b in header)
    for i in range(0, len(out) - 2, 3):
        out[i], out[i + 2] = out[i + 2], out[i]
    return bytes(out)


def _clonk(buf: bytes, path: str) -> _Index:
    if buf[:2] != b"\x1e\x8c":
        raise ArchiveError(f"{path}: not a Clonk group (no 1e 8c signature)")
    blob = gzip.decompress(b"\x1f\x8b" + buf[2:])
    entries: dict[str, tuple[int, int]] = {}

    def walk(base: int, prefix: str, depth: int) -> None:
        if depth > 32:
            raise ArchiveError(f"{path}: groups nested too deep (damaged?)")
        header = _unscramble(blob[base: base + _CLONK_HEADER])
        if not header.startswith(_CLONK_MAGIC):
            raise ArchiveError(f"{path}: {prefix or 'the group'} has no Clonk group header (damaged?)")
        (count,) = struct.unpack("<i", header[36:40])
        table = base + _CLONK_HEADER
        start = table + count * _CLONK_ENTRY
        if count < 0 or start > len(blob):
            raise ArchiveError(f"{path}: {prefix or 'the group'} claims {count} entries (damaged?)")
        for k in range(count):
            entry = blob[table + k * _CLONK_ENTRY: table + (k + 1) * _CLONK_ENTRY]
            name = entry[:260].split(b"\0")[0].decode("latin-1")
            _packed, child, size, _r1, offset, _r2 = struct.unpack("<6i", entry[260:284])
            if not name or "/" in name or name in (".", ".."):
                raise ArchiveError(f"{path}: {prefix}: a bad entry name {name!r} (damaged?)")
            if offset < 0 or size < 0 or start + offset + size > len(blob):
                raise ArchiveError(f"{path}: member {prefix}{name} runs past the end of the group (truncated?)")
            if child:
                walk(start + offset, f"{prefix}{name}/", depth + 1)
            else:
                entries[prefix + name] = (start + offset, size)

    walk(0, "", 0)

    def read(member: str) -> bytes:
        offset, size = entries[member]
        return blob[offset: offset + size]

    return _Index({name: size for name, (_, size) in entries.items()}, read)
