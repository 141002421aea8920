"""Local jobs' servers listen on what they announce (127.0.0.1), never on every interface.

- the shim itself: a plain Python server asking for the wildcard address ends up on loopback
  (IPv4 and dual-stack IPv6), other addresses pass through;
- a real async job (2 workers + 1 ps, TensorFlow gRPC) through
  `tasks.distributed.launch`: while it trains, every listening socket of every task process
  (found through /proc/<pid>/fd and /proc/net/tcp{,6}) is on a loopback address.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tasks.core.params import load_params
from tasks.distributed import launch, loopback
from tasks.distributed.runtime import JobDir
from tests.test_distributed_training import project  # noqa: F401 (module fixture)

LISTEN = "0A"  # TCP state code in /proc/net/tcp


def _decode(hex_addr: str, family: int) -> str:
    """/proc/net/tcp{,6} address (32-bit words in host byte order) -> text."""
    raw = bytes.fromhex(hex_addr)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(family, words)


def listening(pids: list[int]) -> list[tuple[str, int, int]]:
    """(address, port, pid) of every listening TCP socket the processes `pids` own."""
    owner: dict[str, int] = {}
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                owner[target[8:-1]] = pid
    found = []
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for row in Path(table).read_text().splitlines()[1:]:
            cols = row.split()
            if cols[3] == LISTEN and cols[9] in owner:
                addr, port = cols[1].split(":")
                found.append((_decode(addr, family), int(port, 16), owner[cols[9]]))
    return found


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


SERVER = r"""
import socket, sys, time
family = socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.bind((sys.argv[2], 0))
s.listen()
print(s.getsockname()[0], flush=True)
"""


@pytest.mark.parametrize(("family", "asked", "bound"), [
    ("4", "0.0.0.0", "127.0.0.1"), ("6", "::", "::ffff:127.0.0.1"), ("4", "127.0.0.1", "127.0.0.1")])
def test_the_shim_turns_a_wildcard_bind_into_loopback(tmp_path, family, asked, bound):
    env = {**os.environ, "LD_PRELOAD": loopback.preload(tmp_path)}
    out = subprocess.run([sys.executable, "-c", SERVER, family, asked], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [bound]
    # Built once per source version: a second call reuses the library.
    assert loopback.library(tmp_path) == loopback.library(tmp_path)
    assert len(list(tmp_path.glob("loopback-bind-*.so"))) == 1


@pytest.mark.slow
def test_no_task_of_a_local_job_listens_on_every_interface(project):  # noqa: F811
    overrides = {"distributed.strategy": "async", "distributed.workers": 2,
                 "distributed.ps": 1, "word2vec.checkpoint_every": 10}
    cfg = load_params(project / "params.yaml", overrides)
    job = "w2v-test-bind"
    pids: dict[str, int] = {}
    seen: list[tuple[str, int, int]] = []

    def on_line(line: str) -> None:
        started = re.match(r"\[launcher\] started (\S+) pid (\d+)", line)
        if started:
            pids[started.group(1)] = int(started.group(2))

    def inspect() -> None:  # once the chief trains, every server is up
        marker = JobDir.of(cfg, job).checkpoints / "checkpoint"
        deadline = time.monotonic() + 500
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        seen.extend(listening(list(pids.values())))

    probe = threading.Thread(target=inspect, daemon=True)
    probe.start()
    result = launch(cfg, project / "params.yaml", overrides, on_line=on_line, job=job)
    probe.join(timeout=30)
    assert result.ok and len(pids) == 3
    by_pid = {pid: name for name, pid in pids.items()}
    servers = {by_pid[pid] for _, _, pid in seen}
    # the parameter server did listen (workers only connect to it: they serve nothing)...
    assert "ps:0" in servers, seen
    wildcard = [s for s in seen if s[0] in ("0.0.0.0", "::")]
    assert wildcard == [], f"listening on every interface: {wildcard}"
    assert all(is_loopback(addr) for addr, _, _ in seen), seen  # ...on loopback only
