"""The bad-input suite (issue #12, docs/reliability.md): property-based tests with Hypothesis.

Three categories of generated input, each fed to the real stage or CLI `main()` in-process
(plus a few real processes for exit codes):
- params overrides (`--set key=value` on the vocab stage): wrong types, out-of-range and
  non-finite numbers, unknown keys, text that is not YAML;
- own-dataset files (the prepare stage on `data.custom`): random bytes, several encodings,
  quotes, huge lines, unicode and emoji labels, paths outside data/custom;
- query strings (`python -m tasks.word2vec nearby|analogy`): any unicode, undecodable bytes
  (as argv delivers them), odd `--k`.
Every case must either succeed (exit 0, no `error:` line) or print exactly one `error:` line
with a non-zero exit, no traceback, and leave the outputs byte-for-byte as they were; after
the generated cases, a good run succeeds. Case counts: `max_examples` below times
conftest.EXAMPLES_SCALE (1 in `make test`, 10 with HYPOTHESIS_PROFILE=nightly).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import EXAMPLES_SCALE
from hypothesis import event, given, settings
from hypothesis import strategies as st
from w2v_fixtures import planted_corpus

from tasks import prepare, vocab, word2vec
from tasks.core.params import apply_overrides, flatten

REPO = Path(__file__).resolve().parents[1]
BASE = {"tracking.enabled": False, "vocab.min_count": 1, "vocab.sample": 0.0,
        "data.corpus": ["mine"], "data.labelled": "mine", "prepare.folds": 0,
        "data.custom.mine": {"format": "class_files", "files": {
            "pos": "data/custom/pos.txt", "neg": "data/custom/neg.txt"}}}
GOOD_POS = "".join(f"a fine and witty film number {i}\n" for i in range(20))
GOOD_NEG = "".join(f"a dull and tedious film number {i}\n" for i in range(20))


def workspace(root: Path) -> Path:
    """A project root with good own-dataset files, prepared and vocab outputs; -> params."""
    custom = root / "data" / "custom"
    custom.mkdir(parents=True, exist_ok=True)
    (custom / "pos.txt").write_text(GOOD_POS)
    (custom / "neg.txt").write_text(GOOD_NEG)
    raw = apply_overrides(yaml.safe_load((REPO / "params.yaml").read_text()), BASE)
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert prepare.main(["--params", str(params)]) == 0
    assert vocab.main(["--params", str(params)]) == 0
    return params


def snapshot(root: Path) -> dict[str, str]:
    """md5 of every output file (data/ except the inputs in data/custom, and metrics/)."""
    files = [p for p in sorted(root.rglob("*")) if p.is_file()
             and "custom" not in p.relative_to(root).parts and p.name != "params.yaml"]
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in files}


def outcome(main: Any, argv: list[str], root: Path, capsys: pytest.CaptureFixture) -> int:
    """Run one case; assert success, or one error line + exit 2 + outputs unchanged."""
    before = snapshot(root)
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert "Traceback (most recent call last)" not in captured.err, captured.err[-3000:]
    event(f"exit {code}" + (f": {errors[0].split(':')[1].strip()}" if errors else ""))
    if code == 0:
        assert errors == [], captured.err
        return code
    # 2 = foreseen (bad params or input); 1 would be an unforeseen error: a bug to fix
    assert code == 2 and len(errors) == 1, (code, captured.err[-3000:])
    assert snapshot(root) == before, "a failed run changed its outputs"
    return code


def as_yaml(value: Any) -> str:
    """A generated value as the text of a `--set key=value` (YAML; floats exact)."""
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


# -- 1. params overrides --------------------------------------------------------------------

# paths.* and tracking.* are left out on purpose: a generated paths.vocab of "/" or "..",
# or a tracking.uri, would make a *successful* run write outside the test's folder.
KNOWN = sorted(k for k in flatten(yaml.safe_load((REPO / "params.yaml").read_text()))
               if not k.startswith(("paths.", "tracking.")))
scalars = st.one_of(
    st.integers(-(10**12), 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), st.none(), st.text(max_size=12))
values = st.one_of(scalars, st.lists(scalars, max_size=3),
                   st.dictionaries(st.text(max_size=6), scalars, max_size=2))
keys = st.one_of(
    st.sampled_from(KNOWN),
    st.builds(lambda k, extra: f"{k.rsplit('.', 1)[0]}.{extra}", st.sampled_from(KNOWN),
              st.text(min_size=1, max_size=8)),                       # unknown key in a section
    st.text(min_size=1, max_size=20))                                 # anything at all
overrides = st.lists(st.one_of(
    st.builds(lambda k, v: f"{k}={as_yaml(v)}", keys, values),
    st.builds(lambda k, t: f"{k}={t}", keys, st.text(max_size=20))),   # raw text: maybe not YAML
    min_size=1, max_size=3)


@pytest.fixture(scope="module")
def params_ws(tmp_path_factory) -> Path:
    return workspace(tmp_path_factory.mktemp("params-ws"))


@settings(max_examples=120 * EXAMPLES_SCALE)
@given(sets=overrides)
def test_params_overrides_succeed_or_fail_in_one_line(params_ws, capsys, sets):
    argv = ["--params", str(params_ws)] + [a for s in sets for a in ("--set", s)]
    outcome(vocab.main, argv, params_ws.parent, capsys)


@settings(max_examples=40 * EXAMPLES_SCALE)
@given(key=st.sampled_from([k for k in KNOWN if isinstance(
    flatten(yaml.safe_load((REPO / "params.yaml").read_text()))[k], float)]),
       value=st.sampled_from([math.inf, -math.inf, math.nan]))
def test_non_finite_floats_are_refused_naming_the_key(params_ws, capsys, key, value):
    argv = ["--params", str(params_ws), "--set", f"{key}={as_yaml(value)}"]
    assert outcome(vocab.main, argv, params_ws.parent, capsys) == 2


def test_params_good_run_after_the_bad_ones(params_ws):
    assert vocab.main(["--params", str(params_ws)]) == 0


# -- 2. own-dataset files -------------------------------------------------------------------

labels = st.one_of(st.sampled_from(["pos", "neg", "tr\u00e8s bien", "tr\u00e9s bien",
                                    "\U0001F600", "\u05e9\u05dc\u05d5\u05dd", " x", "a\tb",
                                    "", "e\u0301", "\u2028"]),
                   st.text(min_size=0, max_size=6))
texts = st.one_of(st.text(max_size=60),
                  st.sampled_from(['say "hi"', '"unterminated', 'a,b,"c', "line\nbreak",
                                   "caf\u00e9 cr\u00e8me", "\U0001F3AC great"]),
                  st.integers(1, 40_000).map(lambda n: "word " * n))          # huge lines
encodings = st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16"])


def encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding, errors="replace")


@st.composite
def datasets(draw) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(data.custom.mine spec, {path under the root: bytes})."""
    fmt = draw(st.sampled_from(["csv", "tsv", "class_files"]))
    enc = draw(encodings)
    outside = st.sampled_from(["../outside.txt", "/etc/passwd", "params.yaml",
                               "data/custom/../../x.txt"])
    if fmt == "class_files":
        names = draw(st.lists(labels, min_size=1, max_size=3, unique=True))
        files, spec_files = {}, {}
        for i, label in enumerate(names):
            rel = draw(outside) if draw(st.integers(0, 9)) == 0 else f"data/custom/c{i}.txt"
            if draw(st.booleans()):
                body = draw(st.binary(max_size=300))                            # random bytes
            else:
                body = encode("\n".join(draw(st.lists(texts, max_size=5))), enc)
            files[rel] = body
            spec_files[label] = rel
        return {"format": "class_files", "files": spec_files}, files
    sep = "," if fmt == "csv" else "\t"
    rows = draw(st.lists(st.tuples(texts, labels), max_size=6))
    quote = draw(st.booleans())
    cell = (lambda s: '"' + s.replace('"', '""') + '"') if quote and fmt == "csv" else str
    lines = [f"text{sep}label"] + [f"{cell(t)}{sep}{cell(lab)}" for t, lab in rows]
    body = encode("\n".join(lines) + "\n", enc)
    if draw(st.integers(0, 5)) == 0:
        body = draw(st.binary(max_size=400))
    rel = draw(outside) if draw(st.integers(0, 9)) == 0 else f"data/custom/t.{fmt}"
    return {"format": fmt, "file": rel}, {rel: body}


@pytest.fixture(scope="module")
def data_ws(tmp_path_factory) -> Path:
    return workspace(tmp_path_factory.mktemp("data-ws"))


@settings(max_examples=100 * EXAMPLES_SCALE)
@given(case=datasets())
def test_own_dataset_files_prepare_or_fail_in_one_line(data_ws, capsys, case):
    spec, files = case
    root = data_ws.parent
    for rel, body in files.items():
        target = (root / rel).resolve()
        if target.is_relative_to(root / "data" / "custom"):   # never write outside
            target.write_bytes(body)
    argv = ["--params", str(data_ws), "--set", f"data.custom.mine={as_yaml(spec)}"]
    outcome(prepare.main, argv, root, capsys)


def test_own_dataset_good_run_after_the_bad_ones(data_ws):
    assert prepare.main(["--params", str(data_ws)]) == 0
    assert (data_ws.parent / "data" / "prepared" / "train.tsv").is_file()


# -- 3. query strings -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def query_ws(tmp_path_factory) -> Path:
    """Vocabulary from the planted corpus and random unit vectors: queries need no training."""
    root = tmp_path_factory.mktemp("query-ws")
    params = workspace(root)
    (root / "data" / "prepared" / "corpus.txt").write_text(planted_corpus(40))
    assert vocab.main(["--params", str(params)]) == 0
    size = len((root / "data" / "vocab" / "vocab.tsv").read_text().splitlines()) - 1
    (root / "data" / "word2vec").mkdir(parents=True)
    np.save(root / "data" / "word2vec" / "embeddings.npy",
            np.random.default_rng(0).normal(size=(size, 8)).astype(np.float32))
    return params


words = st.one_of(st.sampled_from(["a0", "b3", "A1", "<unk>", "<pad>", "", " ", "--k"]),
                  st.text(max_size=10),
                  st.binary(min_size=1, max_size=6).map(os.fsdecode))  # undecodable argv


@settings(max_examples=100 * EXAMPLES_SCALE)
@given(command=st.sampled_from(["nearby", "analogy"]), query=st.lists(words, min_size=1,
                                                                       max_size=4),
       k=st.one_of(st.none(), st.integers(-10, 50)))
def test_query_strings_answer_or_fail_in_one_line(query_ws, capsys, command, query, k):
    if command == "analogy":
        query = (query * 3)[:3]
    argv = [command, "--params", str(query_ws), *(["--k", str(k)] if k is not None else []),
            "--", *query]
    outcome(word2vec.main, argv, query_ws.parent, capsys)


# -- real processes: exit codes and stderr as a shell sees them -------------------------------

@pytest.mark.parametrize("argv", [
    ["-m", "tasks.vocab", "--set", "word2vec.learning_rate=.inf"],
    ["-m", "tasks.vocab", "--set", "cnn.dropout=[1,"],
    ["-m", "tasks.word2vec", "nearby", "--k", "-5", "a0"],
    ["-m", "tasks.word2vec", "nearby", os.fsdecode(b"\xff\xfe")],
    ["-m", "tasks.cnn", "predict", "--model-dir", "nowhere", os.fsdecode(b"caf\xe9")],
], ids=["inf", "not-yaml", "k", "bytes-word", "bytes-predict"])
def test_real_processes_exit_non_zero_with_one_line(query_ws, argv):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = list(argv)
    if "tasks.cnn" not in args:
        args += ["--params", str(query_ws)]
    done = subprocess.run([sys.executable, *args], cwd=query_ws.parent, capture_output=True,
                          env=env, timeout=300)
    err = done.stderr.decode("utf-8", "replace").strip().splitlines()
    assert done.returncode == 2 and done.stdout == b""
    assert len(err) == 1 and err[0].startswith("error: "), err
