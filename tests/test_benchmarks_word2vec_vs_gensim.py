"""benchmarks/word2vec_vs_gensim.py on tiny data: alternating pairs, median ratio, both scored."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tests.w2v_fixtures import workspace

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gensim_bench",
                                               REPO / "benchmarks" / "word2vec_vs_gensim.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_pairs_alternate_and_the_report_keeps_its_keys(tmp_path):
    cfg = workspace(tmp_path / "ws")
    out = tmp_path / "bench.json"
    code = bench.main(["--params", str(tmp_path / "ws" / "params.yaml"), "--epochs", "1",
                       "--pairs", "2", "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    for key in ("words_per_sec_ratio", "words_per_cpu_sec_ratio", "analogy_gap_points",
                "wordsim_gap", "gensim", "ours", "pairs", "median_words_per_sec_ratio"):
        assert key in report
    pairs = report["pairs"]
    assert [p["order"] for p in pairs] == [["gensim", "ours"], ["ours", "gensim"]]
    for p in pairs:
        for side in ("gensim", "ours"):
            run = p[side]
            assert run["words_per_sec"] > 0 and run["cpu_utilisation"] > 0
            assert len(run["loadavg_before"]) == 3
        assert p["words_per_sec_ratio"] == round(
            p["ours"]["words_per_sec"] / p["gensim"]["words_per_sec"], 3)
    ratios = sorted(p["words_per_sec_ratio"] for p in pairs)
    assert report["median_words_per_sec_ratio"] == sum(ratios) / 2
    assert report["words_per_sec_ratio"] in ratios
    assert report["tokens"] == sum(len(line.split()) for line in
                                   (cfg.path("prepared") / "corpus.txt").read_text().splitlines())
