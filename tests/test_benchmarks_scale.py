"""benchmarks/scale.py on tiny data: shuffled copies, every stage as a measured child process."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from tests.w2v_fixtures import workspace

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("scale_bench", REPO / "benchmarks" / "scale.py")
scale = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scale)


def test_copies_are_reshuffled_and_cut_at_the_target(tmp_path):
    lines = [f"w{i} x{i} y\n" for i in range(50)]
    per_line = np.full(50, 3)
    written = scale.build_corpus(lines, per_line, 400, tmp_path / "raw", seed=7)
    parts = sorted((tmp_path / "raw").glob("part-*.txt"))
    copies = [p.read_text().splitlines(keepends=True) for p in parts]
    assert len(parts) == 3 and written == 402 == sum(3 * len(c) for c in copies)
    assert sorted(copies[0]) == sorted(lines) == sorted(copies[1])   # full copies: same lines
    assert copies[0] != copies[1] and copies[0] != lines               # different orders
    assert set(copies[2]) <= set(lines) and len(copies[2]) == 34       # the cut copy


def test_scale_benchmark_measures_every_stage_at_every_size(tmp_path):
    cfg = workspace(tmp_path / "ws")
    source_tokens = sum(len(line.split()) for line in
                        (cfg.path("prepared") / "corpus.txt").read_text().splitlines())
    out = tmp_path / "results" / "scale.json"
    code = scale.main(["--params", str(tmp_path / "ws" / "params.yaml"), "--tokens", "0",
                       str(3 * source_tokens), "--workdir", str(tmp_path / "work"),
                       "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert [(r["stage"]) for r in rows] == list(scale.STAGES) * 2
    sizes = sorted({r["tokens"] for r in rows})
    assert sizes[0] == source_tokens and 3 * source_tokens <= sizes[1] < 3 * source_tokens + 11
    for r in rows:
        assert r["seconds"] > 0 and r["peak_rss_bytes"] > 20e6 and r["cpu_seconds"] > 0
        assert r["seconds_per_m_tokens"] == round(r["seconds"] / (r["tokens"] / 1e6), 3)
    # the stages really ran on the scaled corpus: prepare and vocab counted its tokens
    for r in rows:
        if r["stage"] in ("prepare", "vocab"):
            assert r["corpus_tokens"] == r["tokens"]
    # word2vec (TensorFlow) needs far more memory than counting words
    w2v = [r for r in rows if r["stage"] == "word2vec"]
    vocab_rows = [r for r in rows if r["stage"] == "vocab"]
    assert min(r["peak_rss_bytes"] for r in w2v) > max(r["peak_rss_bytes"] for r in vocab_rows)
    assert set(report["summary"]) == set(scale.STAGES)
    assert out.with_suffix(".png").stat().st_size > 10_000
    assert not (tmp_path / "work" / f"t{source_tokens}").exists()    # cleaned per size
