"""Robust download of one registry dataset: mirror or public URL -> verified file, atomically.

    result = fetch(spec, raw / spec.filename, cfg.download, mirror=os.environ.get("DATA_MIRROR"))

Inputs: a `tasks.core.catalog.DatasetSpec` (url, size, md5 and/or sha256), the destination file,
the `download` params section (connect_timeout, read_timeout, retries, backoff) and an
optional mirror: a local folder, or a base URL (http://, https://, file://) holding the file
under the public URL's basename, or several of them separated by `|`
(`DATA_MIRROR='../shared/mirror/nltk|../shared/mirror/mnist'`), tried in order for each file
until one has it. `|` because it cannot occur in a URL (RFC 3986 requires it percent-encoded),
unlike `:` `;` `,` (os.pathsep is `:`, part of every URL), and, unlike whitespace, it is
practically never part of a folder name; quote the value in a shell. A mirror is used *instead
of* the public URL (never as a fallback: offline CI must not wander onto the internet).

Output: `dest`, written only after its size and checksums match the spec (a `<dest>.part`
is streamed, resumed with an HTTP Range request after a broken transfer, then renamed), and a
`FetchResult` recording the source used (`cached`, `mirror` or `url`). A file already present
and verified is not fetched again. 404-like answers fail at once; 5xx, 408, 429, timeouts and
broken connections are retried with exponential backoff (backoff, 2*backoff, ...). After the
last retry the `.part` is kept so the next run resumes it; a checksum mismatch deletes it.
Every expected failure is a one-line `PipelineError` naming the dataset and the cause.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit
from urllib.request import url2pathname

import requests
import urllib3

from tasks.core.catalog import DatasetSpec
from tasks.core.errors import PipelineError
from tasks.core.hashing import digests
from tasks.core.params import Download

log = logging.getLogger(__name__)

MIRROR_ENV = "DATA_MIRROR"
MIRROR_SEPARATOR = "|"
_URL_SCHEMES = ("http://", "https://", "file://")
CHUNK = 1 << 16
USER_AGENT = "w2v-cnn-pipeline/0.1 (+requests)"
RETRY_STATUS = {408, 425, 429}  # plus every 5xx
_NETWORK_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError,
                   http.client.HTTPException, ConnectionError, TimeoutError)


@dataclass(frozen=True)
class FetchResult:
    name: str
    path: Path
    source: str        # "cached" | "mirror" | "url"
    location: str      # where the bytes came from (credentials redacted); "" when cached
    size: int
    sha256: str
    md5: str
    requests: int      # HTTP requests made (0 when cached or copied from a folder)
    resumed: bool      # a Range request continued a partial download
    seconds: float


class _Retry(Exception):
    """A transient failure: back off and try again, keeping the .part for a resume."""


class _Restart(Exception):
    """The .part cannot be continued: delete it and request the whole file again."""


def redact(url: str) -> str:
    """`https://user:pw@host/x` -> `https://host/x`: URLs go into logs and MLflow tags."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def verify(spec: DatasetSpec, path: Path) -> tuple[int, str, str]:
    """Check `path` against the spec's size / sha256 / md5 (whichever it has)."""
    size, sha, md5 = digests(path)
    for what, expected, got in (("size", spec.size, size), ("sha256", spec.sha256, sha),
                                ("md5", spec.md5, md5)):
        if expected is not None and expected != got:
            raise PipelineError(f"{spec.name}: {what} mismatch for {spec.filename}: "
                                f"expected {expected}, got {got}")
    return size, sha, md5


def _verify_or_delete(spec: DatasetSpec, path: Path) -> tuple[int, str, str]:
    try:
        return verify(spec, path)
    except PipelineError as exc:
        path.unlink(missing_ok=True)
        raise PipelineError(f"{exc} (file deleted)") from None


def split_mirrors(mirror: str | None) -> list[str]:
    """`DATA_MIRROR` -> its entries, in order (`a|b`; blank entries ignored; none -> [])."""
    if not mirror:
        return []
    return [entry.strip() for entry in mirror.split(MIRROR_SEPARATOR) if entry.strip()]


def check_mirrors(mirror: str | None) -> list[str]:
    """The entries of `DATA_MIRROR`, each a base URL or an existing folder (else PipelineError)."""
    entries = split_mirrors(mirror)
    for entry in entries:
        if not entry.startswith(_URL_SCHEMES) and not Path(entry).expanduser().is_dir():
            raise PipelineError(f"{MIRROR_ENV}={redact_mirrors(mirror or '')}: {entry!r} is "
                                f"not a folder or an http(s)/file URL")
    return entries


def redact_mirrors(mirror: str) -> str:
    """`redact` applied to every entry of a `DATA_MIRROR` value."""
    return MIRROR_SEPARATOR.join(redact(entry) for entry in split_mirrors(mirror))


def resolve_source(spec: DatasetSpec, mirror: str | None) -> tuple[str, str]:
    """-> (kind, location) for one mirror entry (or the public URL when `mirror` is empty):
    kind is "mirror" or "url"; location a URL or a local file path."""
    if not mirror:
        location = spec.url
        kind = "url"
    elif mirror.startswith(_URL_SCHEMES):
        location = f"{mirror.rstrip('/')}/{quote(spec.filename)}"
        kind = "mirror"
    else:
        folder = Path(mirror).expanduser()
        if not folder.is_dir():
            raise PipelineError(f"{MIRROR_ENV}={mirror}: not a folder or an http(s)/file URL")
        return "mirror", str(folder / spec.filename)
    if location.startswith("file://"):
        return kind, url2pathname(urlsplit(location).path)
    return kind, location


def fetch(spec: DatasetSpec, dest: Path | str, settings: Download,
          mirror: str | None = None) -> FetchResult:
    """Make `dest` a verified copy of `spec`'s file; see the module docstring.

    With several mirror entries, each is tried in turn; the first that yields a verified file
    wins. When none does, the error names every entry's failure (one entry: its own error)."""
    entries = split_mirrors(mirror)
    if len(entries) <= 1:
        return _fetch(spec, dest, settings, entries[0] if entries else None)
    failures = []
    for entry in entries:
        try:
            return _fetch(spec, dest, settings, entry)
        except PipelineError as exc:
            reason = str(exc).removeprefix(f"{spec.name}: ")
            log.info("%s: not from mirror %s (%s); trying the next", spec.name, redact(entry),
                     reason)
            failures.append(f"{redact(entry)}: {reason}")
    raise PipelineError(f"{spec.name}: {spec.filename} not fetched from any of the "
                        f"{len(entries)} {MIRROR_ENV} entries ({'; '.join(failures)})")


def _fetch(spec: DatasetSpec, dest: Path | str, settings: Download,
           mirror: str | None) -> FetchResult:
    """`fetch` from one source: the mirror entry `mirror`, or the public URL when None."""
    started = time.perf_counter()
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        try:
            size, sha, md5 = verify(spec, dest)
        except PipelineError as exc:
            log.warning("%s: existing %s is not the expected file (%s); fetching it again",
                        spec.name, dest.name, exc)
            dest.unlink()
        else:
            log.info("%s: %s already present and verified; not fetched again",
                     spec.name, dest.name)
            return FetchResult(spec.name, dest, "cached", "", size, sha, md5, 0, False,
                               time.perf_counter() - started)

    kind, location = resolve_source(spec, mirror)
    part = dest.with_name(dest.name + ".part")
    if location.startswith(("http://", "https://")):
        if part.exists() and part.stat().st_size == spec.size:
            count, resumed = 0, True  # a run died just before the rename: verification decides
        else:
            count, resumed = _download(spec, location, part, settings)
        try:
            size, sha, md5 = _verify_or_delete(spec, part)
        except PipelineError:
            if not resumed:
                raise
            # The kept .part may be the start of an older version of the file: one clean try.
            log.warning("%s: resumed file failed verification; downloading it whole", spec.name)
            more, _ = _download(spec, location, part, settings)
            count += more
            size, sha, md5 = _verify_or_delete(spec, part)
    else:
        _copy(spec, Path(location), part)
        count, resumed = 0, False
        size, sha, md5 = _verify_or_delete(spec, part)
    os.replace(part, dest)
    seconds = time.perf_counter() - started
    shown = redact(location)
    how = "copied" if not location.startswith(("http://", "https://")) else (
        f"{count} request{'' if count == 1 else 's'}{', resumed' if resumed else ''}")
    log.info("%s: %s bytes from %s %s in %.2f s (%s)", spec.name, f"{size:,}", kind, shown,
             seconds, how)
    return FetchResult(spec.name, dest, kind, shown, size, sha, md5, count, resumed, seconds)


def _copy(spec: DatasetSpec, source: Path, part: Path) -> None:
    """Copy from a local mirror folder (or file:// URL); the copy is verified like a download."""
    if not source.is_file():
        raise PipelineError(f"{spec.name}: {source.name} not found in mirror folder "
                            f"{source.parent}")
    try:
        shutil.copyfile(source, part)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise PipelineError(f"{spec.name}: cannot copy {source}: {exc.strerror or exc}") from None


def _download(spec: DatasetSpec, url: str, part: Path, settings: Download) -> tuple[int, bool]:
    """Stream `url` into `part` with retries; -> (requests made, whether a resume happened)."""
    attempts = settings.retries + 1
    resumed = False
    last = ""
    with requests.Session() as session:
        session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
        for attempt in range(1, attempts + 1):
            try:
                resumed |= _attempt(session, spec, url, part, settings)
                return attempt, resumed
            except _Restart as exc:
                last = str(exc)
                part.unlink(missing_ok=True)
                log.warning("%s: %s; starting over", spec.name, last)
            except _Retry as exc:
                last = str(exc)
                if attempt < attempts:
                    delay = settings.backoff * 2 ** (attempt - 1)
                    log.warning("%s: %s; retry %d/%d in %.2f s", spec.name, last, attempt,
                                settings.retries, delay)
                    time.sleep(delay)
    raise PipelineError(f"{spec.name}: {redact(url)}: failed after {attempts} attempt"
                        f"{'' if attempts == 1 else 's'}: {last}")


def _attempt(session: requests.Session, spec: DatasetSpec, url: str, part: Path,
             settings: Download) -> bool:
    """One request; appends to `part` on 206, rewrites it on 200. -> True if it resumed."""
    offset = part.stat().st_size if part.exists() else 0
    if spec.size is not None and offset > spec.size:
        raise _Restart(f"partial file is larger ({offset} bytes) than expected")
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = session.get(url, headers=headers, stream=True,
                               timeout=(settings.connect_timeout, settings.read_timeout))
    except (requests.Timeout, requests.ConnectionError) as exc:
        raise _Retry(f"{type(exc).__name__}: {_short(exc)}") from None
    except requests.RequestException as exc:  # bad URL, bad scheme: retrying cannot help
        raise PipelineError(f"{spec.name}: cannot request {redact(url)}: {_short(exc)}") from None
    with response:
        status = response.status_code
        if status == 416:
            raise _Restart("server refused the resume range (HTTP 416)")
        if status in RETRY_STATUS or status >= 500:
            raise _Retry(f"HTTP {status} {response.reason}")
        if status not in (200, 206):
            raise PipelineError(f"{spec.name}: HTTP {status} {response.reason} for {redact(url)}")
        resumed = status == 206 and offset > 0
        if status == 206:
            start = _range_start(response.headers.get("Content-Range", ""))
            if start != offset:
                raise _Restart(f"server answered range start {start}, asked {offset}")
        elif offset:
            log.info("%s: server ignored the Range request; restarting from byte 0", spec.name)
            offset = 0
        length = response.headers.get("Content-Length")
        expected = offset + int(length) if length and length.isdigit() else spec.size
        _stream(spec, response, part, offset, expected)
    return resumed


def _stream(spec: DatasetSpec, response: requests.Response, part: Path, offset: int,
            expected: int | None) -> None:
    """Write the body after `offset` bytes already in `part`; a short body is retried."""
    written = offset
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=expected, initial=offset, unit="B", unit_scale=True,
                   desc=spec.name, leave=False)
    try:
        with open(part, "ab" if offset else "wb") as out:
            while True:
                try:
                    # read1 hands over whatever arrived, so bytes received before a stall
                    # are on disk and the retry resumes after them.
                    chunk = response.raw.read1(CHUNK)
                except _NETWORK_ERRORS as exc:  # read timeouts, resets, short bodies
                    raise _Retry(f"transfer broke after {written} bytes "
                                 f"({type(exc).__name__}: {_short(exc)})") from None
                if not chunk:
                    break
                written += len(chunk)
                if spec.size is not None and written > spec.size:
                    out.close()
                    part.unlink(missing_ok=True)
                    raise PipelineError(f"{spec.name}: size mismatch: expected {spec.size} "
                                        f"bytes, the server sent more")
                out.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:  # the local disk, not the network
        raise PipelineError(f"{spec.name}: cannot write {part}: {exc.strerror or exc}") from None
    finally:
        if bar is not None:
            bar.close()
    if expected is not None and written < expected:
        raise _Retry(f"connection closed after {written} of {expected} bytes")


def _range_start(header: str) -> int | None:
    match = re.match(r"bytes\s+(\d+)-\d+/(\d+|\*)", header.strip())
    return int(match.group(1)) if match else None


def _short(exc: BaseException) -> str:
    """One line of an exception (urllib3 messages nest reprs and newlines)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."
