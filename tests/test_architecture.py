"""The layout rules of docs/architecture.md, checked on the source.

- dvc.yaml: each stage's code deps cover its command's whole import closure inside the
  project (a missed file would leave `dvc status` clean after a real change), and list nothing
  outside it (a spurious re-run);
- import rules: packages import only lower layers (or themselves), no stage entry module is
  imported by anything but its own command, and only flows/ imports Prefect.
"""

from __future__ import annotations

import ast
import modulefinder
from pathlib import Path

import pytest
import yaml
from importgraph import REPO, closure, imports_of, module_name, stage_entry

STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
CODE_ROOTS = ("tasks/", "flows/")

# Layer of each library package; a module may import its own package or a lower layer.
LAYERS = {"tasks.core": 0, "tasks.text": 1, "tasks.ingest": 2, "tasks.embeddings": 3,
          "tasks.classifier": 3, "tasks.digits": 3, "tasks.distributed": 4}
ENTRY_LAYER, FLOWS_LAYER = 5, 6
COMMANDS = {"tasks.compare", "tasks.repro", "tasks.plots"}   # entry modules that are commands, not dvc.yaml stages
ENTRIES = {stage_entry(s["cmd"]) for s in STAGES.values()} | COMMANDS


def project_files() -> list[Path]:
    return sorted(p for root in ("tasks", "flows") for p in (REPO / root).rglob("*.py"))


def package_of(module: str) -> str:
    """`tasks.core.params` -> `tasks.core`; a stage entry or flows module -> itself / flows."""
    if module.startswith("flows"):
        return "flows"
    if module in ENTRIES or module == "tasks":
        return module
    return ".".join(module.split(".")[:2])


def layer_of(module: str) -> int:
    package = package_of(module)
    if package == "flows":
        return FLOWS_LAYER
    if package == "tasks" or package in ENTRIES:
        return ENTRY_LAYER if package != "tasks" else -1
    return LAYERS[package]


def code_deps(stage: dict) -> list[str]:
    return [d for d in stage.get("deps", []) if str(d).startswith(CODE_ROOTS)]


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("name", [n for n, s in STAGES.items() if stage_entry(s["cmd"])])
def test_stage_deps_are_its_import_closure(name: str) -> None:
    stage = STAGES[name]
    needed = {str(p.relative_to(REPO)) for p in closure(stage_entry(stage["cmd"]))}
    deps = code_deps(stage)
    missing = sorted(p for p in needed if not covered(p, deps))
    assert not missing, f"{name}: dvc.yaml deps miss {missing} (run tests/importgraph.py)"
    for dep in deps:
        target = REPO / dep
        assert target.exists(), f"{name}: dep {dep} does not exist"
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
        extra = [str(f.relative_to(REPO)) for f in files if str(f.relative_to(REPO)) not in needed]
        assert not extra, f"{name}: dep {dep} lists {extra}, outside the stage's import closure"


@pytest.mark.parametrize("name", [n for n, s in STAGES.items() if stage_entry(s["cmd"])])
def test_closure_agrees_with_modulefinder(name: str) -> None:
    """An independent check of importgraph: the standard library's ModuleFinder (bytecode
    scan, lazy imports included), limited to the repository, finds the same files."""
    entry = REPO.joinpath(*stage_entry(STAGES[name]["cmd"]).split(".")).with_suffix(".py")
    finder = modulefinder.ModuleFinder(path=[str(REPO)])
    finder.run_script(str(entry))
    found = {Path(m.__file__) for m in finder.modules.values()
             if m.__file__ and Path(m.__file__).is_relative_to(REPO)}
    assert found == closure(stage_entry(STAGES[name]["cmd"]))


def test_every_stage_depends_on_the_params_parser() -> None:
    for name, stage in STAGES.items():
        if stage_entry(stage["cmd"]):
            assert "tasks/core/params.py" in code_deps(stage), name


def test_closure_follows_lazy_and_package_imports() -> None:
    """The checker itself: function-level imports and parent __init__ files are followed."""
    cnn = {str(p.relative_to(REPO)) for p in closure("tasks.cnn")}
    assert {"tasks/__init__.py", "tasks/classifier/__init__.py",      # parents of a lazy import
            "tasks/classifier/model.py", "tasks/text/normalize.py"} <= cnn
    assert "tasks/ingest/fetch.py" not in cnn and "tasks/vocab.py" not in cnn


@pytest.mark.parametrize("path", project_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_import_rules(path: Path) -> None:
    me = module_name(path)
    mine = package_of(me)
    for imported in imports_of(path):
        theirs = package_of(imported)
        if theirs in (mine, "tasks"):
            continue
        assert theirs not in ENTRIES, f"{me} imports the entry module {imported}"
        assert not (me.startswith("tasks") and theirs == "flows"), f"{me} imports {imported}"
        if mine == "flows":
            continue
        assert layer_of(imported) < layer_of(me), (
            f"{me} (layer {layer_of(me)}) imports {imported} (layer {layer_of(imported)})")


@pytest.mark.parametrize("path", project_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_only_flows_import_prefect(path: Path) -> None:
    if module_name(path).startswith("flows"):
        return
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(n == "prefect" or n.startswith("prefect.") for n in names), path


def test_every_library_package_has_a_layer() -> None:
    packages = {package_of(module_name(p)) for p in project_files()}
    libraries = {p for p in packages if p.count(".") == 1 and p not in ENTRIES}
    assert libraries <= set(LAYERS), sorted(libraries - set(LAYERS))
