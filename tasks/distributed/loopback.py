"""Keep a local job's TensorFlow servers on 127.0.0.1: a tiny LD_PRELOAD `bind()` shim.

    env["LD_PRELOAD"] = loopback.preload(cache_dir, env.get("LD_PRELOAD"))

Why a shim: `tf.distribute.Server` (and the server MultiWorkerMirroredStrategy starts) always
asks gRPC for the wildcard address `0.0.0.0:<port>`, which gRPC opens as a dual-stack `[::]`
socket: every interface, no authentication, whatever host the cluster spec names. Neither
ServerDef nor TF_CONFIG has a bind-address field. The shim replaces a wildcard `bind()` in the
task processes (and only there: the launcher sets LD_PRELOAD in their environment) by the
loopback address: IPv4 `0.0.0.0` -> `127.0.0.1`, IPv6 `::` -> `::ffff:127.0.0.1` (the
IPv4-mapped loopback, so the dual-stack socket still accepts the peers' 127.0.0.1 dials).
Other addresses pass through unchanged.

It is compiled once per source version with the system C compiler (`cc`) into `cache_dir`
(atomic rename; concurrent launches agree). No compiler: PipelineError, because silently
listening on every interface is what this module exists to prevent.
Kubernetes pods need the pod IP instead; there a NetworkPolicy limits who may connect.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tasks.core.errors import PipelineError

SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn real_bind;
    if (!real_bind) real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    if (addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in a;
        memcpy(&a, addr, sizeof a);
        if (a.sin_addr.s_addr == htonl(INADDR_ANY)) {
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            return real_bind(fd, (const struct sockaddr *)&a, sizeof a);
        }
    } else if (addr && addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 a;
        memcpy(&a, addr, sizeof a);
        if (IN6_IS_ADDR_UNSPECIFIED(&a.sin6_addr)) {
            memset(&a.sin6_addr, 0, sizeof a.sin6_addr);   /* ::ffff:127.0.0.1 */
            a.sin6_addr.s6_addr[10] = 0xff;
            a.sin6_addr.s6_addr[11] = 0xff;
            a.sin6_addr.s6_addr[12] = 127;
            a.sin6_addr.s6_addr[15] = 1;
            return real_bind(fd, (const struct sockaddr *)&a, sizeof a);
        }
    }
    return real_bind(fd, addr, len);
}
"""


def library(cache_dir: Path) -> Path:
    """The compiled shim in `cache_dir` (built on first use); PipelineError without `cc`."""
    digest = hashlib.sha256(SOURCE.encode()).hexdigest()[:12]
    target = Path(cache_dir) / f"loopback-bind-{digest}.so"
    if target.is_file():
        return target
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        raise PipelineError("distributed: local jobs keep their TensorFlow servers on "
                            "127.0.0.1 with a small bind() shim that needs a C compiler "
                            "(cc); install one (e.g. apt-get install gcc)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src, out = Path(tmp) / "shim.c", Path(tmp) / "shim.so"
        src.write_text(SOURCE)
        proc = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(out), str(src),
                               "-ldl"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise PipelineError(f"distributed: cannot build the loopback bind() shim: "
                                f"{(proc.stderr or proc.stdout).strip()[:300]}")
        os.replace(out, target)
    return target


def preload(cache_dir: Path, existing: str | None = None) -> str:
    """The LD_PRELOAD value for a task: the shim first, then whatever was preloaded before."""
    return " ".join(p for p in (str(library(cache_dir)), existing or "") if p)
