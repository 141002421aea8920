"""What running the pipeline through Prefect costs over plain `dvc repro`.

    # nothing to do: `dvc repro` vs the `pipeline` flow with every stage skipped
    .venv/bin/python benchmarks/orchestration_overhead.py noop --root . --repeat 3
    # the whole pipeline from scratch, in two fresh copies of the project (real data)
    DATA_MIRROR=../shared/mirror/nltk .venv/bin/python benchmarks/orchestration_overhead.py full --repeat 2

`noop` works in the given checkout, which must be up to date (it runs `dvc repro` once first
as a warm-up, which builds whatever is missing). It times: `dvc repro` (CLI, nothing to
do); the flow called in-process against a running Prefect server (the server a deployment
uses); `python -m flows.pipeline` as a subprocess against that server (interpreter start and
imports included); and the same CLI without PREFECT_API_URL (Prefect's temporary local
server started per run: what a user without a server pays).

`full` copies the project (code, params, dvc.yaml; no outputs, no DVC cache) twice into a
temp dir, runs `dvc repro` in one and the flow in the other with the same environment
(DATA_MIRROR etc.), checks both are clean and reports the overhead in percent. `--set k=v`
overrides go into both copies' params.yaml (e.g. for a shorter run).

A Prefect server is started on a free 127.0.0.1 port unless PREFECT_API_URL is set.
Output: a table on stdout and JSON in benchmarks/results/orchestration_overhead-<mode>.json
(no-op: `seconds` = median wall time per variant, `cpu_seconds` = median CPU time of the
command and its children, the figure a loaded shared machine distorts least; full:
`overhead_percent` per pair and their median, CPU seconds and the load average per pair).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

COPIED = ["tasks", "flows", "scripts", "dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", "data/custom"]
RELATIVE_FILES = ["word2vec.analogy_file", "word2vec.wordsim_file"]  # resolved vs the source


def env_for(root: Path) -> dict[str, str]:
    from flows.stages import stage_env

    return stage_env({"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONPATH": str(root)})


CPU: list[float] = []  # CPU seconds (user + sys) of the last timed() command and its children


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], root: Path, env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds and stdout of `cmd`; its CPU seconds (with its children, e.g. DVC and a
    temporary Prefect server, not a running server) go to CPU[-1]: on a shared, loaded
    machine they vary far less than wall time."""
    cpu = children_cpu()
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    CPU.append(children_cpu() - cpu)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return seconds, result.stdout


def dvc_repro(root: Path, env: dict[str, str]) -> tuple[float, str]:
    return timed([sys.executable, "-m", "dvc", "repro", "dvc.yaml"], root, env)


def flow_cli(root: Path, env: dict[str, str]) -> tuple[float, dict]:
    seconds, out = timed([sys.executable, "-m", "flows.pipeline", "--root", str(root), "--json"],
                         root, env)
    return seconds, json.loads(out.strip().splitlines()[-1])


def flow_in_process(root: Path) -> tuple[float, dict]:
    from flows.pipeline import pipeline

    cpu = time.process_time() + children_cpu()
    started = time.perf_counter()
    summary = pipeline(root=str(root))
    seconds = time.perf_counter() - started
    CPU.append(time.process_time() + children_cpu() - cpu)
    return seconds, summary


def stats(values: list[float], cpu: list[float]) -> dict[str, float]:
    """`seconds`: median wall time; `cpu_seconds`: median CPU time (this process's and its
    children's; not a running server's)."""
    return {"seconds": round(statistics.median(values), 2), "min_s": round(min(values), 2),
            "max_s": round(max(values), 2), "cpu_seconds": round(statistics.median(cpu), 2),
            "runs": len(values)}


def noop(root: Path, repeat: int, api_url: str) -> dict:
    env = env_for(root)
    dvc_repro(root, env)  # warm-up: build what is missing, fill DVC's state db
    results: dict[str, list[float]] = {"dvc repro": [], "flow (in-process, server)": [],
                                       "flow CLI (server)": [], "flow CLI (temporary server)": []}
    cpu: dict[str, list[float]] = {name: [] for name in results}
    served = {**env, "PREFECT_API_URL": api_url}
    local = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    for _ in range(repeat):
        seconds, out = dvc_repro(root, env)
        assert "Running stage" not in out, "the checkout is not up to date"
        results["dvc repro"].append(seconds)
        cpu["dvc repro"].append(CPU[-1])
        seconds, summary = flow_in_process(root)
        assert all(s["status"] == "skipped" for s in summary["stages"].values()), summary
        results["flow (in-process, server)"].append(seconds)
        cpu["flow (in-process, server)"].append(CPU[-1])
        results["flow CLI (server)"].append(flow_cli(root, served)[0])
        cpu["flow CLI (server)"].append(CPU[-1])
        results["flow CLI (temporary server)"].append(flow_cli(root, local)[0])
        cpu["flow CLI (temporary server)"].append(CPU[-1])
        print(f"repetition {len(cpu['dvc repro'])}: "
              f"{ {k: round(v[-1], 1) for k, v in results.items()} }, load {os.getloadavg()}",
              flush=True)
    return {name: stats(values, cpu[name]) for name, values in results.items()}


def copy_project(source: Path, dest: Path, overrides: dict) -> Path:
    import yaml

    from tasks.core.params import apply_overrides, parse
    from tests.flowtools import git

    dest.mkdir(parents=True)
    for name in COPIED:
        if (source / name).is_dir():
            shutil.copytree(source / name, dest / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif (source / name).exists():
            shutil.copy2(source / name, dest / name)
    raw = yaml.safe_load((source / "params.yaml").read_text())
    fixed = {}
    for key in RELATIVE_FILES:
        section, field = key.split(".")
        value = raw.get(section, {}).get(field)
        if value and not Path(value).is_absolute():
            fixed[key] = str((source / value).resolve())
    raw = apply_overrides(raw, {**fixed, **overrides})
    parse(raw, dest)
    (dest / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    git(dest, "init", "-q")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=dest, check=True)
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "benchmark copy")
    return dest


def full_pair(source: Path, overrides: dict, api_url: str, flow_first: bool) -> dict:
    """One `dvc repro` and one flow run of the whole pipeline, each in a fresh copy."""
    work = Path(tempfile.mkdtemp(prefix="orchestration-bench-"))
    try:
        plain = copy_project(source, work / "dvc", overrides)
        flowed = copy_project(source, work / "prefect", overrides)
        dvc_env = {**env_for(plain), "MLFLOW_TRACKING_URI": f"sqlite:///{work}/dvc-mlflow.db"}
        flow_env = {**env_for(flowed), "PREFECT_API_URL": api_url,
                    "MLFLOW_TRACKING_URI": f"sqlite:///{work}/prefect-mlflow.db"}
        if flow_first:
            flow_seconds, summary = flow_cli(flowed, flow_env)
            flow_cpu = CPU[-1]
            dvc_seconds, _ = dvc_repro(plain, dvc_env)
            dvc_cpu = CPU[-1]
        else:
            dvc_seconds, _ = dvc_repro(plain, dvc_env)
            dvc_cpu = CPU[-1]
            flow_seconds, summary = flow_cli(flowed, flow_env)
            flow_cpu = CPU[-1]
        assert all(s["status"] == "ran" for s in summary["stages"].values()), summary
        for root, env in ((plain, dvc_env), (flowed, flow_env)):
            _, status = timed([sys.executable, "-m", "dvc", "status", "dvc.yaml"], root, env)
            assert "up to date" in status, status
        return {"dvc repro (s)": round(dvc_seconds, 1), "flow CLI (s)": round(flow_seconds, 1),
                "overhead_percent": round(100 * (flow_seconds - dvc_seconds) / dvc_seconds, 1),
                "dvc repro CPU (s)": round(dvc_cpu, 1), "flow CLI CPU (s)": round(flow_cpu, 1),
                "load average": os.getloadavg(),
                "first": "flow" if flow_first else "dvc repro",
                "flow stage seconds": {s: r["seconds"] for s, r in summary["stages"].items()}}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def full(source: Path, overrides: dict, api_url: str, repeat: int) -> dict:
    """`repeat` pairs, alternating which one runs first (a warm page cache favours the
    second); the overhead is the median of the pairs' and of the totals'."""
    pairs = []
    for i in range(repeat):
        pairs.append(full_pair(source, overrides, api_url, flow_first=bool(i % 2)))
        print(f"pair {i + 1}: {pairs[-1]}", flush=True)
    dvc_total = sum(p["dvc repro (s)"] for p in pairs)
    flow_total = sum(p["flow CLI (s)"] for p in pairs)
    return {"overhead_percent": statistics.median(p["overhead_percent"] for p in pairs),
            "pairs": pairs, "dvc repro median (s)":
            statistics.median(p["dvc repro (s)"] for p in pairs),
            "flow CLI median (s)": statistics.median(p["flow CLI (s)"] for p in pairs),
            "overhead_percent median": statistics.median(p["overhead_percent"] for p in pairs),
            "overhead_percent of totals": round(100 * (flow_total - dvc_total) / dvc_total, 1),
            "overrides": overrides}


def main(argv: list[str] | None = None) -> int:
    from tasks.core.stage import parse_overrides

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["noop", "full"])
    parser.add_argument("--root", default=str(REPO), help="the checkout (default: this repo)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (full: pairs, alternating which runs first)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="full: params override in both copies")
    args = parser.parse_args(argv)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    root = Path(args.root).resolve()
    server = None
    api_url = os.environ.get("PREFECT_API_URL", "")
    if not api_url:
        from tests.flowtools import PrefectServer

        server = PrefectServer()
        api_url = server.api_url
    try:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            if args.mode == "noop":
                result = noop(root, args.repeat, api_url)
            else:
                result = full(root, parse_overrides(args.overrides), api_url, args.repeat)
    finally:
        if server is not None:
            server.stop()
    out = REPO / "benchmarks" / "results" / f"orchestration_overhead-{args.mode}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for name, value in result.items():
        print(f"{name:<32} {value}")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
