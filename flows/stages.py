"""The DVC side of the flows: read the stage list, run one stage through `dvc repro`.

No Prefect here: `flows/pipeline.py` wraps these calls in tasks. Everything goes through the
`dvc` command line (as `python -m dvc`, the interpreter running the flow), so a Prefect run
and a `dvc repro` in a shell share one cache, one `dvc.lock` and DVC's locks.

- `stage_names(root)`: the stages of `<root>/dvc.yaml`, in file order, after checking that
  no stage depends on the output of a stage listed after it (so file order is a run order).
- `changed_stages(root, env)`: `dvc status --json dvc.yaml`, the stages DVC would re-run now.
- `repro_stage(root, stage, env, on_line)`: `dvc repro --single-item <stage>`; every output
  line goes to `on_line`; returns a `StageResult` whose status is `ran`, `skipped` (DVC
  found nothing changed) or `restored` (outputs checked out from DVC's run cache). A DVC
  lock held by another run (`Unable to acquire lock`, `... is busy`) is waited for.
- The pipeline flow does not call `changed_stages` / `repro_stage`: it follows ONE `dvc repro`
  (or `dvc exp run`) process stage by stage (flows/follow.py); they run a single stage.
- `stage_env(extra)`: the environment for stage commands (`python -m tasks.X` must find
  this interpreter first on PATH; unbuffered output; no DVC analytics).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tasks.core.tracking import read_yaml

LineSink = Callable[[str], None]

# What DVC prints per stage (dvc/stage/__init__.py, dvc/stage/run.py).
STAGE_EVENT = re.compile(
    r"^(?:Running stage '(?P<ran>[^']+)':"
    r"|Stage '(?P<skipped>[^']+)' didn't change, skipping"
    r"|Stage '(?P<restored>[^']+)' is cached - skipping run)"
)
LOCK_ERRORS = ("Unable to acquire lock", "is busy, it is being blocked by")


class StageError(RuntimeError):
    """A stage (or the experiment running it) failed; the message names it and the cause."""


@dataclass(frozen=True)
class StageResult:
    stage: str
    status: str            # ran | skipped | restored
    seconds: float
    detail: str = ""

    @property
    def skipped(self) -> bool:
        return self.status != "ran"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def dvc_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def stage_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # Not resolved: in a virtualenv sys.executable is .venv/bin/python, a symlink.
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env.update(extra or {})
    return env


def _interpolate(text: str, params: Mapping[str, Any]) -> str:
    def lookup(match: re.Match) -> str:
        node: Any = params
        for part in match.group(1).strip().split("."):
            if not isinstance(node, Mapping) or part not in node:
                return match.group(0)
            node = node[part]
        return str(node)

    return re.sub(r"\$\{([^}]+)\}", lookup, text)


def _paths(entries: Sequence[Any] | None, params: Mapping[str, Any]) -> list[str]:
    out = []
    for entry in entries or []:
        name = next(iter(entry)) if isinstance(entry, Mapping) else entry
        out.append(_interpolate(str(name), params).rstrip("/"))
    return out


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def stage_names(root: Path | str) -> list[str]:
    """Stages of `<root>/dvc.yaml` in file order; raise StageError if that is not a run order."""
    root = Path(root)
    stages = (read_yaml(root / "dvc.yaml") or {}).get("stages") or {}
    params = read_yaml(root / "params.yaml") or {}
    produced: dict[str, list[str]] = {}
    for name, spec in stages.items():
        produced[name] = [p for key in ("outs", "metrics", "plots")
                          for p in _paths(spec.get(key), params or {})]
    names = list(stages)
    for i, name in enumerate(names):
        for dep in _paths(stages[name].get("deps"), params or {}):
            for later in names[i + 1:]:
                if any(_overlaps(dep, out) for out in produced[later]):
                    raise StageError(f"dvc.yaml: stage {name!r} depends on {dep!r}, an output of "
                                     f"the later stage {later!r}; list stages in run order")
    return names


def outside_deps(root: Path | str) -> list[str]:
    """Dependencies of `<root>/dvc.yaml` stages outside the repo (`../shared/eval/x.txt`)."""
    root = Path(root)
    stages = (read_yaml(root / "dvc.yaml") or {}).get("stages") or {}
    params = read_yaml(root / "params.yaml") or {}
    deps = (dep for spec in stages.values() for dep in _paths(spec.get("deps"), params))
    return sorted({dep for dep in deps if dep.startswith("../")})


def _stream(cmd: list[str], root: Path, env: Mapping[str, str], on_line: LineSink) -> tuple[
        int, list[str]]:
    """Run `cmd`, passing each output line (stdout and stderr merged) to `on_line`."""
    lines: list[str] = []
    with subprocess.Popen(cmd, cwd=root, env=dict(env), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace",
                          bufsize=1) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            lines.append(line)
            on_line(line)
        return proc.wait(), lines


def is_lock_error(lines: Sequence[str]) -> bool:
    return any(marker in line for line in lines[-20:] for marker in LOCK_ERRORS)


def error_line(lines: Sequence[str]) -> str:
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors[-1] if errors else (lines[-1] if lines else "no output")).strip()


def changed_stages(root: Path | str, env: Mapping[str, str] | None = None) -> set[str] | None:
    """Stages `dvc status` reports as changed; None if DVC could not tell (then run them all)."""
    # Target the root dvc.yaml only: any other dvc.yaml a user adds below is not this pipeline.
    result = subprocess.run(dvc_command("status", "--json", "dvc.yaml"), cwd=root,
                            env=dict(env or stage_env()), capture_output=True, text=True)
    if result.returncode != 0:
        return None
    try:
        report = json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        return None
    names = (key.rsplit(":", 1) if ":" in key else ("dvc.yaml", key) for key in report)
    return {name for file, name in names if file == "dvc.yaml"}


def _alive(pid: int) -> bool:
    """True while `pid` runs (an exited but unreaped process, a zombie, counts as gone)."""
    import psutil  # a DVC dependency

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # exists, not ours to inspect


def wait_for_lock(deadline: float, poll: float, on_line: LineSink, what: str,
                   lines: Sequence[str] = ()) -> bool:
    """Wait until the DVC processes named in the lock error have exited (or `poll` seconds
    when none is named); False if `deadline` has passed. Polling PIDs costs nothing, unlike
    re-running `dvc` (seconds of CPU each) while the other run trains."""
    if time.monotonic() >= deadline:
        return False
    pids = {int(pid) for line in lines[-20:] for pid in re.findall(r"\(PID (\d+)\)", line)}
    pids.discard(os.getpid())
    named = f" (PID {', '.join(map(str, sorted(pids)))})" if pids else ""
    on_line(f"[flows] {what}: DVC lock held by another run{named}, waiting")
    while pids and time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.5)
    time.sleep(poll * random.uniform(0.5, 1.0))  # jitter: two waiters do not retry in lockstep
    return True


def repro_stage(root: Path | str, stage: str, env: Mapping[str, str] | None = None,
                on_line: LineSink = print, lock_timeout: float = 3600.0,
                poll: float = 2.0) -> StageResult:
    """`dvc repro --single-item <stage>` in `root` (upstream stages must be up to date)."""
    started = time.monotonic()
    deadline = started + lock_timeout
    while True:
        rc, lines = _stream(dvc_command("repro", "--single-item", stage), Path(root),
                            env or stage_env(), on_line)
        if rc == 0:
            events = [m for m in map(STAGE_EVENT.match, lines) if m]
            kinds = {kind for m in events for kind, name in m.groupdict().items() if name == stage}
            status = "ran" if "ran" in kinds else "restored" if "restored" in kinds else "skipped"
            return StageResult(stage, status, round(time.monotonic() - started, 3))
        if is_lock_error(lines) and wait_for_lock(deadline, poll, on_line, stage, lines):
            continue
        raise StageError(f"stage {stage!r} failed (dvc exit {rc}): {error_line(lines)}")
