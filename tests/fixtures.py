"""Shared test data and a loopback HTTP server (used by many test files; keep the API stable).

- `build_nltk_fixtures(folder) -> {name: zip path}`: tiny zips of all seven NLTK datasets in
  the real NLTK layouts (top folder `<name>/`, real file names and formats, README files,
  mixed encodings as in the real zips: latin-1/cp1252 bytes in webtext/wine.txt,
  abc/science.txt (CRLF lines too), state_union/1970-Nixon.txt, inaugural/2005-Bush.txt;
  UTF-8 accents in rt-polarity.pos, abc/rural.txt, inaugural/2021-Biden.txt; and, unlike the
  real (UTF-8) file, latin-1 accents in rt-polarity.neg, so the labelled data has both).
  Planted structure: topic sentences use either ANIMALS or VEHICLES (plus FILLER) words, so
  word2vec neighbours stay inside a topic; polarity sentences use POSITIVE or NEGATIVE words
  (plus shared words), so a classifier separates them. Deterministic bytes, ~60 KB, < 0.2 s.
- `build_mnist_fixtures(folder) -> {registry name: path}`: tiny MNIST IDX files (gzip, real
  format, the original file names) of synthetic digits for the four registry entries
  `mnist-{t10k,train}-{images,labels}` (t10k: 400 images, train: 200), so the download
  stage fetches and the mnist stage reads them with the product's code.
- `build_fixtures(folder)`: both of the above in one folder (what a mirror holds).
- `fixture_registry(files, base_url, path) -> path`: a DATASET_REGISTRY YAML for those files
  (zips or IDX files; each entry keeps its built-in reader and archive kind).
- `fixture_env(folder) -> {"DATA_MIRROR": ..., "DATASET_REGISTRY": ...}`: fixtures (NLTK and
  MNIST) as a local mirror folder, no server needed (registry URLs point at a closed loopback
  port, never contacted).
- `build_raw_tree(raw, names=None) -> {name: tree}`: what the download stage leaves in
  `paths.raw` (archives, extracted `<name>/` trees, markers), built without the stage.
- `serve_directory(folder)`: context manager yielding the base URL of a threaded HTTP server
  on 127.0.0.1 serving `folder`, with Range support.
- `FaultyServer(folder, faults={"x.zip": Fault(...)})`: the same server, with injected faults
  (status codes, truncated bodies, ignored Range, stalls) and a log of every request.
- `nltk_mirror(folder)`: context manager yielding (base_url, registry_path) for a served mirror.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import random
import re
import threading
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

ANIMALS = ["cat", "dog", "horse", "cow", "sheep", "goat", "pig", "rabbit", "mouse", "duck"]
VEHICLES = ["car", "truck", "bus", "train", "bike", "van", "tram", "boat", "taxi", "plane"]
FILLER = ["the", "a", "of", "and", "to", "in", "with", "near", "saw", "was", "on", "by"]
POSITIVE = ["good", "great", "wonderful", "love", "excellent", "brilliant", "delightful",
            "enjoyable"]
NEGATIVE = ["bad", "awful", "boring", "hate", "terrible", "dull", "worst", "tedious"]
SHARED = ["the", "film", "movie", "story", "acting", "plot", "this", "is", "was", "and", "a",
          "it", "very", "really", "its", "cast"]
NLTK_NAMES = ["sentence_polarity", "movie_reviews", "brown", "abc", "state_union", "webtext",
              "inaugural"]

_DATE = (2008, 8, 26, 3, 5, 0)  # fixed timestamps: the zips are byte-identical every build
_TAGS = {"the": "at", "a": "at", "of": "in", "and": "cc", "to": "in", "in": "in",
         "with": "in", "near": "in", "saw": "vbd", "was": "bedz", "on": "in", "by": "in"}


def topic_words(rng: random.Random, n_topic: int = 6, n_filler: int = 3) -> list[str]:
    """One sentence's words: `n_topic` from a single topic cluster mixed with filler words."""
    cluster = ANIMALS if rng.random() < 0.5 else VEHICLES
    words = rng.choices(cluster, k=n_topic) + rng.choices(FILLER, k=n_filler)
    rng.shuffle(words)
    return words


def polarity_words(rng: random.Random, positive: bool) -> list[str]:
    words = rng.choices(POSITIVE if positive else NEGATIVE, k=rng.randint(1, 2))
    words += rng.choices(SHARED, k=rng.randint(4, 8))
    rng.shuffle(words)
    return words


def _sentence(words: list[str]) -> str:
    return " ".join(words).capitalize() + "."


def _zip(path: Path, name: str, files: dict[str, bytes]) -> Path:
    """Write `<name>/` then `<name>/<file>` members (sub-folders get their own entries)."""
    folders = sorted({f"{name}/"} | {f"{name}/{f.rsplit('/', 1)[0]}/" for f in files if "/" in f})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for folder in folders:
            info = zipfile.ZipInfo(folder, _DATE)
            info.external_attr = (0o40755 << 16) | 0x10
            zf.writestr(info, b"")
        for rel in sorted(files):
            info = zipfile.ZipInfo(f"{name}/{rel}", _DATE)
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, files[rel])
    return path


def _readme(title: str) -> bytes:
    return f"{title}\n\nA tiny generated stand-in for the NLTK corpus (tests only).\n".encode()


def _sentence_polarity(rng: random.Random) -> dict[str, bytes]:
    # The real NLTK rt-polarity files are UTF-8; .neg is latin-1 here so readers meet both.
    accents = ["café", "naïve", "señor", "clichés"]
    files = {"README.txt": _readme("Sentence Polarity Dataset 1.0")}
    for label, positive in (("pos", True), ("neg", False)):
        lines = []
        for i in range(200):
            words = polarity_words(rng, positive)
            if i % 20 == 7:
                words.insert(rng.randint(0, len(words)), rng.choice(accents))
            lines.append(" ".join(words) + " . \n")  # lowercased, tokenised, like the real file
        files[f"rt-polarity.{label}"] = "".join(lines).encode("utf-8" if positive else "latin-1")
    return files


def _movie_reviews(rng: random.Random) -> dict[str, bytes]:
    files = {"README": _readme("Sentiment Polarity Dataset Version 2.0")}
    for label, positive in (("neg", False), ("pos", True)):
        for i in range(10):
            lines = [" ".join(polarity_words(rng, positive) + topic_words(rng, 3, 1)) + " . \n"
                     for _ in range(8)]
            files[f"{label}/cv{i:03d}_{rng.randint(10000, 29999)}.txt"] = "".join(lines).encode()
    return files


def _brown(rng: random.Random) -> dict[str, bytes]:
    cats = {"ca01": "news", "ca02": "news", "cb01": "editorial", "cj01": "learned",
            "ck01": "fiction", "cr01": "humor"}
    files = {"README": _readme("BROWN CORPUS"), "CONTENTS": _readme("CONTENTS"),
             "cats.txt": "".join(f"{f} {c}\n" for f, c in cats.items()).encode()}
    for fileid in cats:
        text = []
        for _ in range(30):
            words = topic_words(rng)
            tagged = [f"{w}/{_TAGS.get(w, 'nn')}" for w in words]
            tagged[0] = tagged[0][0].upper() + tagged[0][1:]
            text.append("\n\n\t" + " ".join(tagged) + " ./.\n")
        files[fileid] = "".join(text).encode("ascii")
    return files


def _prose(rng: random.Random, paragraphs: int, per: int) -> str:
    return "\n\n".join(" ".join(_sentence(topic_words(rng)) for _ in range(per))
                       for _ in range(paragraphs))


def _abc(rng: random.Random) -> dict[str, bytes]:
    rural = "\n".join(_sentence(topic_words(rng)) for _ in range(80))
    science = "\r\n".join(_sentence(topic_words(rng)) for _ in range(80))
    return {"README": _readme("Australian Broadcasting Commission 2006"),
            "rural.txt": (f"Café news\n{rural}\n").encode(),
            "science.txt": (f"La Niña heats the sea to 30°C\r\n{science}\r\n").encode("latin-1")}


def _speeches(rng: random.Random, ids: list[str], latin1: str, utf8: str) -> dict[str, bytes]:
    files = {}
    for fileid in ids:
        speaker = fileid.split("-", 1)[1]
        text = f"ADDRESS BY {speaker.upper()}\n\n{_prose(rng, 8, 5)}\n"
        if fileid == latin1:
            files[f"{fileid}.txt"] = f"Fellow citizens\xa0\u2014 a r\xe9sum\xe9.\n{text}".encode(
                "cp1252")
        elif fileid == utf8:
            files[f"{fileid}.txt"] = f"My fellow Americans \u2019 caf\xe9.\n{text}".encode()
        else:
            files[f"{fileid}.txt"] = text.encode("ascii")
    return files


def _state_union(rng: random.Random) -> dict[str, bytes]:
    ids = ["1945-Truman", "1946-Truman", "1970-Nixon", "2006-GWBush"]
    return {"README": _readme("C-Span State of the Union Address Corpus"),
            **_speeches(rng, ids, latin1="1970-Nixon", utf8="")}


def _inaugural(rng: random.Random) -> dict[str, bytes]:
    ids = ["1789-Washington", "1793-Washington", "2005-Bush", "2021-Biden"]
    return {"README": _readme("C-Span Inaugural Address Corpus"),
            **_speeches(rng, ids, latin1="2005-Bush", utf8="2021-Biden")}


def _webtext(rng: random.Random) -> dict[str, bytes]:
    files = {"README": _readme("Web Text Corpus")}
    for fileid in ["firefox", "grail", "overheard", "pirates", "singles", "wine"]:
        lines = [_sentence(topic_words(rng)) for _ in range(25)]
        if fileid == "grail":
            lines = [f"ARTHUR: {line}" for line in lines]
        text = "\n".join(lines) + "\n"
        if fileid == "wine":  # cp1252 quotes, as in the real wine.txt
            files["wine.txt"] = ("\u2018Fragrant\u2019 wine.\n" + text).encode("cp1252")
        else:
            files[f"{fileid}.txt"] = text.encode("ascii")
    return files


_BUILDERS = {"sentence_polarity": _sentence_polarity, "movie_reviews": _movie_reviews,
             "brown": _brown, "abc": _abc, "state_union": _state_union, "webtext": _webtext,
             "inaugural": _inaugural}


def build_nltk_fixtures(folder: Path) -> dict[str, Path]:
    """Write `<name>.zip` for all seven NLTK datasets into `folder`; -> {name: zip path}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return {name: _zip(folder / f"{name}.zip", name, _BUILDERS[name](random.Random(name)))
            for name in NLTK_NAMES}


MNIST_FIXTURE_SIZES = {"t10k": 40, "train": 20}  # images per class


def build_mnist_fixtures(folder: Path) -> dict[str, Path]:
    """Write tiny gzip IDX files under the MNIST names; -> {registry name: path}."""
    from tests.digits_fixtures import synthetic_digits, write_mnist

    out = {}
    for seed, (part, per_class) in enumerate(MNIST_FIXTURE_SIZES.items()):
        images, labels = write_mnist(Path(folder), *synthetic_digits(per_class, seed), part=part)
        out[f"mnist-{part}-images"], out[f"mnist-{part}-labels"] = images, labels
    return out


def build_fixtures(folder: Path) -> dict[str, Path]:
    """The NLTK zips and the MNIST IDX files in one mirror folder; -> {registry name: path}."""
    return {**build_nltk_fixtures(folder), **build_mnist_fixtures(folder)}


def fixture_registry(zips: dict[str, Path], base_url: str, path: Path) -> Path:
    """Write a DATASET_REGISTRY YAML for `zips` (real size/md5/sha256, URLs under base_url);
    the files may also be MNIST IDX files (`build_fixtures`): built-in entries keep their
    reader and archive kind."""
    from tasks.core.catalog import REGISTRY

    entries = {}
    for name, zip_path in zips.items():
        data = Path(zip_path).read_bytes()
        builtin = REGISTRY.get(name)
        entries[name] = {
            "url": f"{base_url.rstrip('/')}/{Path(zip_path).name}",
            "size": len(data),
            "md5": hashlib.md5(data).hexdigest(),
            "sha256": hashlib.sha256(data).hexdigest(),
            "reader": builtin.reader if builtin else "plain_text",
            "labelled": builtin.labelled if builtin else False,
            "archive": builtin.archive if builtin else "zip",
        }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(entries, sort_keys=True))
    return path


def fixture_env(folder: Path) -> dict[str, str]:
    """Fixture zips and MNIST files in `folder` as a local DATA_MIRROR, plus their
    DATASET_REGISTRY file."""
    folder = Path(folder)
    zips = build_fixtures(folder)
    registry = fixture_registry(zips, "http://127.0.0.1:9/nltk", folder / "registry.yaml")
    return {"DATA_MIRROR": str(folder), "DATASET_REGISTRY": str(registry)}


def build_raw_tree(raw: Path, names: Iterable[str] | None = None) -> dict[str, Path]:
    """Fill `raw` exactly as the download stage does (via its own code); -> {name: tree}."""
    from tasks.core.catalog import load_registry_file
    from tasks.core.params import Download
    from tasks.download import materialise

    mirror = Path(raw).parent / f".{Path(raw).name}-fixture-mirror"
    env = fixture_env(mirror)
    specs = load_registry_file(env["DATASET_REGISTRY"])
    settings = Download(connect_timeout=5.0, read_timeout=5.0, retries=0, backoff=0.0,
                        max_extract_mb=64)
    return {name: materialise(specs[name], Path(raw), settings, str(mirror)).tree
            for name in (names or NLTK_NAMES)}


# --- loopback HTTP server -------------------------------------------------------------------

@dataclass
class Fault:
    """What to do instead of a normal answer, for the first `times` requests (0 = always)."""

    status: int | None = None          # answer with this status and a tiny body
    truncate_after: int | None = None  # full headers, then only this many body bytes, close
    ignore_range: bool = False         # answer 200 with the whole file even to a Range request
    stall: float = 0.0                 # seconds to go silent after `stall_after` body bytes
    stall_after: int = 0
    times: int = 1


@dataclass(frozen=True)
class Request:
    path: str           # relative to the served folder, e.g. "brown.zip"
    method: str
    range: str | None   # the Range header, if any
    status: int


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "FixtureServer/1"
    timeout = 10  # a client that goes silent cannot hold a thread for long

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib name)
        pass  # tests read FaultyServer.requests instead of stderr noise

    def do_HEAD(self) -> None:  # noqa: N802 (stdlib naming)
        self._answer(send_body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(send_body=True)

    def _answer(self, send_body: bool) -> None:
        owner: FaultyServer = self.server.owner  # type: ignore[attr-defined]
        rel = unquote(urlsplit(self.path).path).lstrip("/")
        fault = owner.take_fault(rel)
        asked = self.headers.get("Range")

        def head(status: int, length: int, extra: dict[str, str] | None = None) -> None:
            owner.record(Request(rel, self.command, asked, status))
            self.send_response(status)
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()

        if fault and fault.status:
            body = f"fault {fault.status}\n".encode()
            head(fault.status, len(body))
            if send_body:
                self.wfile.write(body)
            return
        path = (owner.folder / rel).resolve()
        if not rel or not path.is_relative_to(owner.folder) or not path.is_file():
            head(404, 0)
            return
        data = path.read_bytes()
        start, end, status, extra = 0, len(data) - 1, 200, {}
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", (asked or "").strip())
        if match and not (fault and fault.ignore_range):
            start = int(match.group(1))
            if start >= len(data):
                head(416, 0, {"Content-Range": f"bytes */{len(data)}"})
                return
            end = min(int(match.group(2)), end) if match.group(2) else end
            status, extra = 206, {"Content-Range": f"bytes {start}-{end}/{len(data)}"}
        payload = data[start:end + 1]
        head(status, len(payload), {"Content-Type": "application/zip", **extra})
        if not send_body:
            return
        try:
            if fault and fault.truncate_after is not None:
                self.wfile.write(payload[:fault.truncate_after])
                self.close_connection = True
                return
            if fault and fault.stall:
                self.wfile.write(payload[:fault.stall_after])
                self.wfile.flush()
                owner.stopping.wait(fault.stall)
                payload = payload[fault.stall_after:]
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its read timeout): that is the point of a stall


class FaultyServer:
    """Threaded HTTP server on 127.0.0.1 (free port) serving `folder`, with injected faults.

        with FaultyServer(folder, {"brown.zip": Fault(truncate_after=1000)}) as server:
            ...fetch(server.url + "/brown.zip")...
            assert server.requests[1].range == "bytes=1000-"

    A fault applies to the first `Fault.times` requests of its path; a list of faults applies
    one per request, in order (`Fault()` = answer normally), e.g.
    `[Fault(truncate_after=10), Fault(ignore_range=True)]`. `faults` may be edited live.

    Stops on exit, or by itself after `lifetime` seconds; stalls end when it stops.
    """

    def __init__(self, folder: Path, faults: dict[str, Fault | list[Fault]] | None = None,
                 lifetime: float = 300.0) -> None:
        self.folder = Path(folder).resolve()
        self.faults = {k: list(v) if isinstance(v, list) else v for k, v in (faults or {}).items()}
        self.requests: list[Request] = []
        self.lifetime = lifetime
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self._port = 0

    @property
    def url(self) -> str:
        assert self._port, "server not started"
        return f"http://127.0.0.1:{self._port}"

    def take_fault(self, rel: str) -> Fault | None:
        """The fault for this request to `rel` (a list value gives one fault per request)."""
        with self._lock:
            fault = self.faults.get(rel)
            if isinstance(fault, list):
                fault = fault.pop(0) if fault else None
                return fault if fault and fault != Fault() else None
            if fault is None:
                return None
            if fault.times:
                fault.times -= 1
                if fault.times == 0:
                    del self.faults[rel]
            return fault

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def hits(self, rel: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == rel]

    def start(self) -> FaultyServer:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.owner = self  # type: ignore[attr-defined]
        self._server, self._port = server, server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fixture-http", daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        self.stopping.set()
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._timer is not None:
            self._timer.cancel()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def serve_directory(folder: Path) -> Iterator[str]:
    """Serve `folder` over HTTP on 127.0.0.1 (Range supported); yield the base URL."""
    with FaultyServer(folder) as server:
        yield server.url


@contextlib.contextmanager
def nltk_mirror(folder: Path) -> Iterator[tuple[str, Path]]:
    """Build the fixture zips (and MNIST files) in `folder/mirror`, serve them; yield
    (base_url, registry)."""
    zips = build_fixtures(Path(folder) / "mirror")
    with serve_directory(Path(folder) / "mirror") as url:
        yield url, fixture_registry(zips, url, Path(folder) / "registry.yaml")
