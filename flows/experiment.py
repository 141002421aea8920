"""A params-overrides run of the whole pipeline as one DVC experiment, split per stage.

`Experiment(root, name, overrides, env, stages).start()` runs
`dvc exp run --temp --name <name> -S k=v ... dvc.yaml` (the root dvc.yaml's pipeline only)
in the background, followed stage by stage as any flows.follow.DvcProcess: each stage's
Prefect task `follow(stage, on_line)`s its own part live and ends when DVC moves on.
Dependencies outside the repo (`../shared/eval/...`) are linked so they resolve in DVC's
copy too. No Prefect here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flows.follow import DvcProcess
from flows.overrides import set_param_args
from flows.stages import LineSink, outside_deps


def link_outside_deps(root: Path, deps: Sequence[str]) -> list[Path]:
    """Make repo-relative paths that leave the repo (`../shared/...`) resolve in DVC's copy.

    DVC runs a --temp experiment in `<root>/.dvc/tmp/exps/standalone/<tmp>/`, where
    `../shared` would be `.dvc/tmp/exps/standalone/shared`: a symlink there to the real
    `<root>/../shared` makes such dependencies (e.g. word2vec.analogy_file) the same files,
    with the same hashes, so DVC skips what did not change instead of failing.
    """
    links = []
    base = root / ".dvc" / "tmp" / "exps" / "standalone" / "tmp"
    for dep in deps:
        parts = Path(dep).parts
        ups = len(parts) - len(tuple(p for p in parts if p != ".."))
        if not 1 <= ups <= 3 or parts[:ups] != ("..",) * ups or len(parts) == ups:
            continue  # deeper would land inside the repo itself
        link = Path(os.path.normpath(base.joinpath(*parts[:ups + 1])))
        target = Path(os.path.normpath(root.joinpath(*parts[:ups + 1])))
        if not target.exists() or link.resolve() == target.resolve():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another experiment made it meanwhile
            if link.is_symlink():
                link.unlink()
            link.symlink_to(target, target_is_directory=target.is_dir())
        links.append(link)
    return links


class Experiment(DvcProcess):
    """A `dvc exp run --temp` of the whole pipeline with params overrides, split per stage.

        exp = Experiment(root, "exp-1", {"cnn.epochs": 2}, env, stage_names(root)).start()
        for stage in stages: exp.follow(stage, on_line)   # blocks until that stage is done
        exp.wait()                                        # exit code 0 or StageError

    DVC runs the stages in a copy under `.dvc/tmp/exps/`, so the workspace (params.yaml,
    outputs, dvc.lock) is untouched; the result is committed as the experiment `name`.
    Lines before the first stage and after the last go to `on_other`.
    """

    def __init__(self, root: Path | str, name: str, overrides: Mapping[str, Any],
                 env: Mapping[str, str], stages: Sequence[str], on_other: LineSink = print,
                 lock_timeout: float = 3600.0, poll: float = 2.0) -> None:
        self.name = name
        args = ["exp", "run", "--temp", "--name", name,
                *set_param_args(Path(root) / "params.yaml", overrides), "dvc.yaml"]
        super().__init__(root, args, env, stages, f"experiment {name!r}", on_other,
                         lock_timeout, poll)

    def start(self) -> Experiment:
        link_outside_deps(self.root, outside_deps(self.root))
        super().start()
        return self
