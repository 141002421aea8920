"""The project's import graph, read from the source (ast), never by importing it.

    closure("tasks.vocab")          # every project file `python -m tasks.vocab` can import
    imports_of(Path("tasks/cnn.py"))  # project modules one file imports, at any depth

Every import statement counts, including those inside functions and `if TYPE_CHECKING:`
blocks: a lazy import still runs when its code path does. Importing `a.b.c` also runs
`a/__init__.py` and `a/b/__init__.py`, so those are part of a closure too.

Run as a script to print, for each stage of dvc.yaml, the code deps its closure needs:
`.venv/bin/python tests/importgraph.py`.
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("tasks", "flows")   # top-level packages that belong to the project


def module_file(name: str) -> Path | None:
    """`tasks.core.params` -> REPO/tasks/core/params.py (or a package's __init__.py)."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    parts = path.resolve().relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def imports_of(path: Path) -> frozenset[str]:
    """Project modules named by the import statements of one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:   # relative: resolve against this file's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join([*base, node.module] if node.module else base)
            else:
                origin = node.module or ""
            found.add(origin)
            # `from pkg import mod` imports the module pkg.mod when there is one.
            found.update(f"{origin}.{alias.name}" for alias in node.names
                         if module_file(f"{origin}.{alias.name}"))
    return frozenset(name for name in found if module_file(name))


def with_parents(name: str) -> list[str]:
    """`a.b.c` -> ["a", "a.b", "a.b.c"]: importing it runs every parent package first."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def closure(entry: str) -> set[Path]:
    """Files (absolute) that `python -m <entry>` may import from the project."""
    seen: set[str] = set()
    todo = with_parents(entry)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name)
        if path is not None:
            for imported in imports_of(path):
                todo.extend(with_parents(imported))
    return {p for p in map(module_file, seen) if p is not None}


def stage_entry(cmd: str) -> str | None:
    """`python -m tasks.vocab ...` -> `tasks.vocab` (None for other commands)."""
    words = cmd.split()
    if "-m" in words and words.index("-m") + 1 < len(words):
        return words[words.index("-m") + 1]
    return None


def needed_deps(entry: str) -> list[str]:
    """Repo-relative files of a closure, sorted: what a stage's dvc.yaml deps must cover."""
    return sorted(str(p.relative_to(REPO)) for p in closure(entry))


def main() -> int:
    import yaml

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    for name, stage in stages.items():
        entry = stage_entry(stage["cmd"])
        if entry:
            print(f"{name}: ({entry})")
            for dep in needed_deps(entry):
                print(f"  - {dep}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
