"""Safe archive extraction: members can never escape, link, or blow up the destination.

    extract(raw / "brown.zip", raw / "brown", max_bytes=1024 * 2**20, strip="brown/")

Inputs: an archive that `tasks.ingest.fetch` already verified, the destination folder, the bound
`download.max_extract_mb` (in bytes here) and an optional leading folder to strip (NLTK zips
hold everything under `<name>/`; stripping it gives `data/raw/brown/ca01`, not
`data/raw/brown/brown/ca01`). `kind="none"` copies a single plain file into the folder.

Output: the folder, created whole through `tasks.core.atomic.atomic_dir` (a temp sibling renamed
into place), so a refused or broken archive leaves the previous tree, or nothing, behind.

Refused, before anything is written: absolute member paths (`/x`, `C:x`), `..` components,
backslashes, symlinks and other non-regular members (the Unix mode in `external_attr`),
encrypted members, duplicate paths, and archives whose declared sizes add up past the bound.
While writing, the bytes actually produced are counted, per member against its declared size
and in total against the bound, so a lying header cannot smuggle a zip bomb past the check.
`ZipFile.extractall` is never used: each member is opened and copied by hand.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from tasks.core.atomic import atomic_dir
from tasks.core.errors import PipelineError

CHUNK = 1 << 16


@dataclass(frozen=True)
class Extracted:
    files: int
    bytes: int


@dataclass(frozen=True)
class _Member:
    info: zipfile.ZipInfo
    path: PurePosixPath   # relative, already checked
    is_dir: bool


class Overflow(Exception):
    """`copy_bounded` produced more than its limit."""


def copy_bounded(src: BinaryIO, dst: BinaryIO, limit: int) -> int:
    """Copy `src` to `dst`, raising `Overflow` as soon as more than `limit` bytes come out."""
    count = 0
    while chunk := src.read(CHUNK):
        count += len(chunk)
        if count > limit:
            raise Overflow(count)
        dst.write(chunk)
    return count


def member_path(name: str) -> PurePosixPath:
    """The checked relative path of a zip member name; PipelineError names what is wrong."""
    if "\\" in name:
        raise PipelineError(f"member {name!r} uses backslashes")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        raise PipelineError(f"member {name!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise PipelineError(f"member {name!r} has a '..' component")
    if not parts:
        raise PipelineError(f"member {name!r} has an empty path")
    return PurePosixPath(*parts)


def plan(zf: zipfile.ZipFile, max_bytes: int, strip: str = "") -> list[_Member]:
    """Check every member before writing anything; -> members to extract, in archive order."""
    infos = zf.infolist()
    if strip and not all(i.filename.startswith(strip) for i in infos):
        strip = ""  # only strip a folder that holds the whole archive
    members, seen, declared = [], set(), 0
    for info in infos:
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise PipelineError(f"member {info.filename!r} is a symlink")
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise PipelineError(f"member {info.filename!r} is not a regular file or folder")
        if info.flag_bits & 0x1:
            raise PipelineError(f"member {info.filename!r} is encrypted")
        name = info.filename[len(strip):]
        if not name.strip("/"):
            continue  # the stripped top folder itself
        path = member_path(name)
        if path in seen:
            raise PipelineError(f"member {info.filename!r} appears twice")
        seen.add(path)
        is_dir = info.is_dir()
        declared += 0 if is_dir else info.file_size
        if declared > max_bytes:
            raise PipelineError(f"members expand past the bound of {max_bytes} bytes "
                                f"(download.max_extract_mb) by their declared sizes")
        members.append(_Member(info, path, is_dir))
    return members


def extract(archive: Path | str, dest: Path | str, *, max_bytes: int, kind: str = "zip",
            strip: str = "") -> Extracted:
    """Extract `archive` into folder `dest` safely and atomically (see the module docstring)."""
    archive, dest = Path(archive), Path(dest)
    try:
        if kind == "none":
            return _copy_plain(archive, dest, max_bytes)
        if kind != "zip":
            raise PipelineError(f"unsupported archive kind {kind!r}")
        return _extract_zip(archive, dest, max_bytes, strip)
    except PipelineError as exc:
        raise PipelineError(f"{archive.name}: {exc}; nothing extracted") from None


def _extract_zip(archive: Path, dest: Path, max_bytes: int, strip: str) -> Extracted:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise PipelineError(f"not a readable zip archive ({exc})") from None
    with zf, atomic_dir(dest) as tmp:
        tmp.chmod(0o755)  # mkdtemp's 0700 would become the tree's mode
        members = plan(zf, max_bytes, strip)
        root = tmp.resolve()
        files = total = 0
        for member in members:
            target = root.joinpath(*member.path.parts)
            if os.path.commonpath([root, target]) != str(root):  # belt and braces
                raise PipelineError(f"member {member.info.filename!r} escapes the folder")
            if member.is_dir:
                target.mkdir(parents=True, exist_ok=True)
                continue
            total += _write_member(zf, member, target, max_bytes - total)
            files += 1
    return Extracted(files, total)


def _write_member(zf: zipfile.ZipFile, member: _Member, target: Path, budget: int) -> int:
    """Write one member (never over an existing path); -> bytes written."""
    name, declared = member.info.filename, member.info.file_size
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(member.info) as src, open(target, "xb") as out:
            return copy_bounded(src, out, min(declared, budget))
    except Overflow:
        if budget < declared:
            raise PipelineError("members expand past the bound of download.max_extract_mb "
                                "while writing") from None
        raise PipelineError(f"member {name!r} expands past its declared size "
                            f"{declared}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise PipelineError(f"member {name!r} is corrupt ({exc})") from None
    except OSError as exc:
        raise PipelineError(f"cannot write member {name!r}: {exc.strerror or exc}") from None


def _copy_plain(source: Path, dest: Path, max_bytes: int) -> Extracted:
    """`archive: none`: the folder holds the single file under its own name."""
    if source.stat().st_size > max_bytes:
        raise PipelineError(f"file is larger than the bound of {max_bytes} bytes")
    with atomic_dir(dest) as tmp:
        tmp.chmod(0o755)
        shutil.copyfile(source, tmp / source.name)
    return Extracted(1, source.stat().st_size)
