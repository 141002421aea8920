"""tasks.ingest.fetch against a real loopback HTTP server with injected faults (no mocks, no internet).

Every failure case checks three things: the error is one clear line, no `<file>` is left
where a later stage would trust it, and a later good run succeeds.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
from pathlib import Path

import pytest
from fixtures import Fault, FaultyServer, build_nltk_fixtures, fixture_registry

from tasks.core.catalog import DatasetSpec, load_registry_file
from tasks.core.errors import PipelineError
from tasks.core.hashing import digests
from tasks.core.params import Download
from tasks.ingest.fetch import (
    check_mirrors,
    fetch,
    redact,
    redact_mirrors,
    resolve_source,
    split_mirrors,
)

FAST = Download(connect_timeout=2.0, read_timeout=2.0, retries=2, backoff=0.0, max_extract_mb=16)
NAME = "sentence_polarity"
FILE = f"{NAME}.zip"


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, DatasetSpec]]:
    """The fixture zips and their specs (URLs are rewritten per test to the live server)."""
    folder = tmp_path_factory.mktemp("mirror")
    zips = build_nltk_fixtures(folder)
    specs = load_registry_file(fixture_registry(zips, "http://127.0.0.1:9",
                                                folder / "registry.yaml"))
    return folder, specs


def spec_at(specs: dict[str, DatasetSpec], server: FaultyServer, **changes) -> DatasetSpec:
    return dataclasses.replace(specs[NAME], url=f"{server.url}/{FILE}", **changes)


def only_file(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_download_verifies_and_renames_into_place(mirror, tmp_path, caplog):
    folder, specs = mirror
    with FaultyServer(folder) as server, caplog.at_level(logging.INFO, "tasks.ingest.fetch"):
        result = fetch(spec_at(specs, server), tmp_path / FILE, FAST)
    assert result.source == "url" and result.requests == 1 and not result.resumed
    assert (tmp_path / FILE).read_bytes() == (folder / FILE).read_bytes()
    assert result.sha256 == specs[NAME].sha256 and result.size == specs[NAME].size
    assert only_file(tmp_path) == [FILE]  # no .part left
    # stderr is not a TTY under pytest: no progress bar, exactly one log line for the file
    lines = [r.getMessage() for r in caplog.records if r.name == "tasks.ingest.fetch"]
    assert len(lines) == 1 and "from url" in lines[0]


def test_present_and_verified_file_is_not_fetched_again(mirror, tmp_path, caplog):
    folder, specs = mirror
    (tmp_path / FILE).write_bytes((folder / FILE).read_bytes())
    with FaultyServer(folder) as server, caplog.at_level(logging.INFO, "tasks.ingest.fetch"):
        result = fetch(spec_at(specs, server), tmp_path / FILE, FAST)
        assert server.requests == []
    assert result.source == "cached" and result.requests == 0
    assert "not fetched again" in caplog.text


def test_present_but_corrupt_file_is_fetched_again(mirror, tmp_path):
    folder, specs = mirror
    (tmp_path / FILE).write_bytes(b"not the zip")
    with FaultyServer(folder) as server:
        result = fetch(spec_at(specs, server), tmp_path / FILE, FAST)
        assert len(server.requests) == 1
    assert result.source == "url"
    assert digests(tmp_path / FILE)[1] == specs[NAME].sha256


def test_checksum_mismatch_deletes_and_names_expected_and_got(mirror, tmp_path):
    folder, specs = mirror
    wrong = "0" * 64
    with FaultyServer(folder) as server:
        with pytest.raises(PipelineError) as info:
            fetch(spec_at(specs, server, sha256=wrong), tmp_path / FILE, FAST)
        message = str(info.value)
        assert "\n" not in message
        assert NAME in message and "sha256 mismatch" in message
        assert f"expected {wrong}" in message and f"got {specs[NAME].sha256}" in message
        assert len(server.requests) == 1  # a mismatch is not retried
        assert only_file(tmp_path) == []  # neither the file nor a .part
        assert fetch(spec_at(specs, server), tmp_path / FILE, FAST).source == "url"


def test_size_only_spec_is_checked(mirror, tmp_path):
    """text8 publishes only a size: that alone must still catch a wrong file."""
    folder, specs = mirror
    with FaultyServer(folder) as server:
        spec = spec_at(specs, server, md5=None, sha256=None, size=specs[NAME].size + 1)
        with pytest.raises(PipelineError, match="size mismatch"):
            fetch(spec, tmp_path / FILE, FAST)
        assert only_file(tmp_path) == []
        ok = spec_at(specs, server, md5=None, sha256=None)
        assert fetch(ok, tmp_path / FILE, FAST).size == specs[NAME].size


def test_truncated_body_is_resumed_with_a_range_request(mirror, tmp_path):
    folder, specs = mirror
    with FaultyServer(folder, {FILE: Fault(truncate_after=1000)}) as server:
        result = fetch(spec_at(specs, server), tmp_path / FILE, FAST)
        first, second = server.hits(FILE)
    assert first.range is None and first.status == 200
    assert second.range == "bytes=1000-" and second.status == 206
    assert result.resumed and result.requests == 2
    assert digests(tmp_path / FILE)[1] == specs[NAME].sha256
    assert only_file(tmp_path) == [FILE]


def test_server_ignoring_range_restarts_cleanly(mirror, tmp_path):
    folder, specs = mirror
    faults = {FILE: [Fault(truncate_after=1000), Fault(ignore_range=True)]}
    with FaultyServer(folder, faults) as server:  # the retry gets a 200 with the whole file
        result = fetch(spec_at(specs, server), tmp_path / FILE, FAST)
        statuses = [(r.range, r.status) for r in server.hits(FILE)]
    assert statuses == [(None, 200), ("bytes=1000-", 200)]
    assert not result.resumed
    assert digests(tmp_path / FILE)[1] == specs[NAME].sha256  # not 1000 bytes + whole file


def test_range_not_satisfiable_restarts(mirror, tmp_path):
    """A stale .part longer than the file (no size published): 416, then a whole download."""
    folder, specs = mirror
    (tmp_path / f"{FILE}.part").write_bytes(b"x" * (specs[NAME].size + 10))
    with FaultyServer(folder) as server:
        result = fetch(spec_at(specs, server, size=None), tmp_path / FILE, FAST)
        statuses = [(r.range, r.status) for r in server.hits(FILE)]
    assert statuses == [(f"bytes={specs[NAME].size + 10}-", 416), (None, 200)]
    assert result.sha256 == specs[NAME].sha256
    assert only_file(tmp_path) == [FILE]


def test_stale_part_from_another_file_is_downloaded_again_whole(mirror, tmp_path):
    folder, specs = mirror
    (tmp_path / f"{FILE}.part").write_bytes(b"y" * 500)  # resumable, but wrong bytes
    with FaultyServer(folder) as server:
        result = fetch(spec_at(specs, server), tmp_path / FILE, FAST)
        ranges = [r.range for r in server.hits(FILE)]
    assert ranges == ["bytes=500-", None]
    assert result.sha256 == specs[NAME].sha256


def test_http_404_is_not_retried(mirror, tmp_path):
    folder, specs = mirror
    with FaultyServer(folder, {FILE: Fault(status=404)}) as server:
        with pytest.raises(PipelineError) as info:
            fetch(spec_at(specs, server), tmp_path / FILE, FAST)
        assert len(server.requests) == 1
        message = str(info.value)
        assert f"HTTP 404 Not Found for {server.url}/{FILE}" in message and NAME in message
        assert only_file(tmp_path) == []
        assert fetch(spec_at(specs, server), tmp_path / FILE, FAST).source == "url"


def test_http_500_is_retried_with_doubling_backoff_then_succeeds(mirror, tmp_path, caplog):
    folder, specs = mirror
    settings = dataclasses.replace(FAST, backoff=0.01)
    with FaultyServer(folder, {FILE: Fault(status=500, times=2)}) as server:
        with caplog.at_level(logging.WARNING, "tasks.ingest.fetch"):
            result = fetch(spec_at(specs, server), tmp_path / FILE, settings)
        assert [r.status for r in server.requests] == [500, 500, 200]
    assert result.requests == 3
    assert "retry 1/2 in 0.01 s" in caplog.text and "retry 2/2 in 0.02 s" in caplog.text


def test_persistent_500_gives_up_after_the_retries(mirror, tmp_path):
    folder, specs = mirror
    with FaultyServer(folder, {FILE: Fault(status=503, times=0)}) as server:
        with pytest.raises(PipelineError, match=r"failed after 3 attempts: HTTP 503"):
            fetch(spec_at(specs, server), tmp_path / FILE, FAST)
        assert len(server.requests) == 3
        assert not (tmp_path / FILE).exists()
        server.faults.clear()
        assert fetch(spec_at(specs, server), tmp_path / FILE, FAST).source == "url"


def test_stall_past_the_read_timeout_is_retried_and_resumed(mirror, tmp_path):
    folder, specs = mirror
    settings = dataclasses.replace(FAST, read_timeout=0.3)
    with FaultyServer(folder, {FILE: Fault(stall=5.0, stall_after=700)}) as server:
        result = fetch(spec_at(specs, server), tmp_path / FILE, settings)
        ranges = [r.range for r in server.hits(FILE)]
    assert ranges == [None, "bytes=700-"]
    assert result.resumed and result.sha256 == specs[NAME].sha256


def test_stall_without_retries_fails_then_a_later_run_resumes(mirror, tmp_path):
    folder, specs = mirror
    settings = dataclasses.replace(FAST, read_timeout=0.3, retries=0)
    with FaultyServer(folder, {FILE: Fault(stall=5.0, stall_after=700)}) as server:
        with pytest.raises(PipelineError) as info:
            fetch(spec_at(specs, server), tmp_path / FILE, settings)
        assert "failed after 1 attempt: transfer broke after 700 bytes" in str(info.value)
        assert "\n" not in str(info.value)
        # The verified name never appears; the .part stays for the next run to resume.
        assert only_file(tmp_path) == [f"{FILE}.part"]
        result = fetch(spec_at(specs, server), tmp_path / FILE, settings)
        assert server.hits(FILE)[-1].range == "bytes=700-"
    assert result.resumed and only_file(tmp_path) == [FILE]


def test_connection_refused_is_retried_then_fails_clearly(mirror, tmp_path):
    _, specs = mirror
    with socket.socket() as sock:  # a port nobody listens on once this socket closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spec = dataclasses.replace(specs[NAME], url=f"http://127.0.0.1:{port}/{FILE}")
    with pytest.raises(PipelineError, match=r"failed after 3 attempts: ConnectionError"):
        fetch(spec, tmp_path / FILE, FAST)
    assert only_file(tmp_path) == []


def test_data_mirror_folder_is_copied_and_verified(mirror, tmp_path):
    folder, specs = mirror  # the spec URL (closed loopback port) is never contacted
    result = fetch(specs[NAME], tmp_path / FILE, FAST, mirror=str(folder))
    assert result.source == "mirror" and result.location == str(folder / FILE)
    assert result.sha256 == specs[NAME].sha256
    uri = fetch(specs[NAME], tmp_path / "again" / FILE, FAST, mirror=folder.as_uri())
    assert uri.source == "mirror" and uri.sha256 == specs[NAME].sha256


def test_data_mirror_folder_with_a_wrong_file_fails_verification(mirror, tmp_path):
    folder, specs = mirror
    bad = tmp_path / "bad-mirror"
    bad.mkdir()
    (bad / FILE).write_bytes(b"tampered")
    with pytest.raises(PipelineError, match=f"{NAME}: size mismatch"):
        fetch(specs[NAME], tmp_path / "out" / FILE, FAST, mirror=str(bad))
    assert only_file(tmp_path / "out") == []
    with pytest.raises(PipelineError, match=f"{NAME}: {FILE} not found in mirror folder"):
        fetch(specs[NAME], tmp_path / "out" / FILE, FAST, mirror=str(tmp_path / "out"))
    with pytest.raises(PipelineError, match="DATA_MIRROR=.*not a folder"):
        fetch(specs[NAME], tmp_path / "out" / FILE, FAST, mirror=str(tmp_path / "nope"))


def test_data_mirror_base_url_is_used_instead_of_the_public_url(mirror, tmp_path):
    folder, specs = mirror
    with FaultyServer(folder) as server:
        result = fetch(specs[NAME], tmp_path / FILE, FAST, mirror=server.url + "/")
        assert [r.path for r in server.requests] == [FILE]
    assert result.source == "mirror" and result.location == f"{server.url}/{FILE}"


def test_source_resolution_and_redaction(mirror):
    _, specs = mirror
    spec = specs[NAME]
    assert resolve_source(spec, None) == ("url", spec.url)
    assert resolve_source(spec, "https://127.0.0.1:8443/nltk/") == (
        "mirror", f"https://127.0.0.1:8443/nltk/{FILE}")
    assert resolve_source(spec, "file:///srv/mirror") == ("mirror", f"/srv/mirror/{FILE}")
    assert redact("https://user:secret@127.0.0.1:8443/x.zip") == "https://127.0.0.1:8443/x.zip"


def test_data_mirror_list_is_tried_in_order_per_file(mirror, tmp_path, caplog):
    folder, specs = mirror
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    # the first entry lacks the file: the second (a folder) has it
    result = fetch(specs[NAME], tmp_path / "a" / FILE, FAST, mirror=f"{empty}|{folder}")
    assert result.source == "mirror" and result.location == str(folder / FILE)
    with FaultyServer(folder) as server, FaultyServer(empty) as missing:
        # a base URL answering 404, then a served folder; blanks around `|` are ignored
        result = fetch(specs[NAME], tmp_path / "b" / FILE, FAST,
                       mirror=f" {missing.url} | {server.url}/ ")
        assert [(r.path, r.status) for r in missing.requests] == [(FILE, 404)]
        assert [r.path for r in server.requests] == [FILE]
        assert result.location == f"{server.url}/{FILE}"
        # the first entry that has the file wins: the second is never asked
        fetch(specs[NAME], tmp_path / "c" / FILE, FAST, mirror=f"{server.url}|{missing.url}")
        assert len(missing.requests) == 1
    # none has it: one line naming every entry's failure, nothing left behind
    with pytest.raises(PipelineError) as info:
        fetch(specs[NAME], tmp_path / "d" / FILE, FAST, mirror=f"{empty}|{tmp_path / 'a'}x")
    message = str(info.value)
    assert message.startswith(f"{NAME}: {FILE} not fetched from any of the 2 DATA_MIRROR")
    assert str(empty) in message and "not found in mirror folder" in message
    assert "\n" not in message and not (tmp_path / "d" / FILE).exists()


def test_data_mirror_value_is_split_and_checked(tmp_path):
    assert split_mirrors(None) == split_mirrors("") == []
    assert split_mirrors("/a") == ["/a"]  # a single value behaves as before
    assert split_mirrors("/a | https://h/x |") == ["/a", "https://h/x"]
    assert check_mirrors(f"{tmp_path}|https://127.0.0.1:1/m") == [str(tmp_path),
                                                                   "https://127.0.0.1:1/m"]
    with pytest.raises(PipelineError, match="'/no/such/folder' is not a folder"):
        check_mirrors(f"{tmp_path}|/no/such/folder")
    assert redact_mirrors("https://u:p@127.0.0.1/a|/b") == "https://127.0.0.1/a|/b"
