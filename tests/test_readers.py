"""Dataset readers on small trees in the real NLTK layouts, and users' custom files."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from tasks.core.errors import PipelineError
from tasks.core.params import CustomDataset
from tasks.ingest import readers
from tasks.ingest.readers import DecodeLog, Example, split_sentences


def tree(raw: Path, name: str, files: dict[str, str | bytes], nested: bool = True) -> Path:
    """Write `files` under raw/<name>/<name>/ (zip extracted as-is) or raw/<name>/ (stripped)."""
    base = raw / name / name if nested else raw / name
    for rel, content in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return raw / name


def read_all(reader, root: Path, unit: str = "sentence") -> tuple[list[Example], DecodeLog]:
    log = DecodeLog()
    return list(reader(root, log, unit)), log


def test_sentence_polarity_labels_and_latin1_fallback(tmp_path):
    tree(tmp_path, "sentence_polarity", {
        "rt-polarity.pos": "a gorgeous , witty film . \nit 's a charmer\n",
        # latin-1 bytes (0xe9 = é) are not valid UTF-8: this file needs the fallback.
        "rt-polarity.neg": "a clich\xe9d mess\n\n   \nboring\n".encode("latin-1"),
        "README.txt": "not data\n",
    })
    root = readers.dataset_root(tmp_path, "sentence_polarity")
    examples, log = read_all(readers.sentence_polarity, root, "example")
    assert examples == [("neg", "a clichéd mess"), ("neg", "boring"),
                        ("pos", "a gorgeous , witty film ."), ("pos", "it 's a charmer")]
    assert log.latin1 == {str(root / "rt-polarity.neg")}
    assert inspect.isgenerator(readers.sentence_polarity(root, log))


def test_movie_reviews_sentences_or_whole_reviews(tmp_path):
    tree(tmp_path, "movie_reviews", {
        "neg/cv000_1.txt": "plot : two teen couples go to a party . \nthey crash .\n",
        "neg/cv001_2.txt": "bad .\n",
        "pos/cv000_3.txt": "films adapted from comics . \n\nfun ( mostly ) .\n",
        "README": "not a review\n",
    })
    root = readers.dataset_root(tmp_path, "movie_reviews")
    sentences, _ = read_all(readers.movie_reviews, root, "sentence")
    assert sentences == [("neg", "plot : two teen couples go to a party ."),
                         ("neg", "they crash ."), ("neg", "bad ."),
                         ("pos", "films adapted from comics ."), ("pos", "fun ( mostly ) .")]
    reviews, _ = read_all(readers.movie_reviews, root, "example")
    assert reviews == [("neg", "plot : two teen couples go to a party . they crash ."),
                       ("neg", "bad ."), ("pos", "films adapted from comics . fun ( mostly ) .")]


def test_brown_strips_tags_and_skips_non_text_files(tmp_path):
    tree(tmp_path, "brown", {
        "ca01": "\n\n\tThe/at Fulton/np-tl jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ./.\n"
                "\n\n\tMix/vb 1/2/cd cup/nn and/or/cc //in salt/nn ./.\n",
        "cb02": "\tAtlanta's/np$ mayor/nn ?/.\n",
        "cats.txt": "ca01 news\ncb02 editorial\n",
        "CONTENTS": "A. PRESS: REPORTAGE\n",
        "README": "BROWN CORPUS\n",
    })
    sentences, _ = read_all(readers.brown, readers.dataset_root(tmp_path, "brown"))
    assert [e.text for e in sentences] == [
        "The Fulton jury said no evidence .",
        "Mix 1/2 cup and/or / salt .",
        "Atlanta's mayor ?",
    ]
    assert {e.label for e in sentences} == {""}


def test_plain_text_splits_lines_into_sentences(tmp_path):
    tree(tmp_path, "state_union", {
        "1945-Truman.txt": "ADDRESS\r\n \r\nMr. Speaker, Mr. President: It is late. We act!\r\n",
        "1946-Truman.txt": "The U.S. Army won. \"Why?\" he asked.\n",
        "README": "not text.\n",
    })
    sentences, _ = read_all(readers.plain_text, readers.dataset_root(tmp_path, "state_union"))
    assert [e.text for e in sentences] == [
        "ADDRESS", "Mr. Speaker, Mr. President: It is late.", "We act!",
        "The U.S. Army won.", "\"Why?\" he asked.",
    ]


@pytest.mark.parametrize(
    ("paragraph", "sentences"),
    [
        ("One. Two! Three? four.", ["One.", "Two!", "Three? four."]),
        ("Dr. Who met Harry S. Truman. Then 1945 came...", ["Dr. Who met Harry S. Truman.",
                                                            "Then 1945 came..."]),
        ("It cost $5.5 million. (Really.) \"Yes.\" OK", ["It cost $5.5 million.", "(Really.)",
                                                        "\"Yes.\"", "OK"]),
        ("no boundary here", ["no boundary here"]),
        ("", []),
    ],
)
def test_split_sentences(paragraph, sentences):
    assert split_sentences(paragraph) == sentences


def test_text8_streams_pseudo_sentences(tmp_path, monkeypatch):
    words = [f"w{i % 37}" for i in range(2 * readers.TEXT8_SENTENCE + 500)]
    tree(tmp_path, "text8", {"text8": " " + " ".join(words)}, nested=False)
    # Tiny reads so that words are cut by chunk boundaries and must be carried over.
    monkeypatch.setattr(readers, "_CHUNK", 7)
    sentences, _ = read_all(readers.text8, readers.dataset_root(tmp_path, "text8"))
    assert [len(e.text.split()) for e in sentences] == [1000, 1000, 500]
    assert " ".join(e.text for e in sentences).split() == words


def test_both_raw_layouts_read_the_same_and_missing_folder_is_clear(tmp_path):
    files = {"rural.txt": "Rain fell. Farmers smiled.\n", "README": "x\n"}
    tree(tmp_path / "a", "abc", files, nested=True)
    tree(tmp_path / "b", "abc", files, nested=False)
    nested, _ = read_all(readers.plain_text, readers.dataset_root(tmp_path / "a", "abc"))
    flat, _ = read_all(readers.plain_text, readers.dataset_root(tmp_path / "b", "abc"))
    assert nested == flat == [("", "Rain fell."), ("", "Farmers smiled.")]
    with pytest.raises(PipelineError, match=r"abc.*missing: run the download stage first"):
        readers.dataset_root(tmp_path / "c", "abc")


def test_class_files_one_example_per_line(tmp_path):
    (tmp_path / "pos.txt").write_text("Great phone. Love it!\nworks\n")
    (tmp_path / "neg.txt").write_bytes("d\xe9\xe7u\n".encode("latin-1"))
    spec = CustomDataset(format="class_files", files={"pos": "pos.txt", "neg": "neg.txt"})
    log = DecodeLog()
    assert list(readers.class_files(spec, tmp_path, log, "example")) == [
        ("neg", "déçu"), ("pos", "Great phone. Love it!"), ("pos", "works")]
    assert log.latin1 == {str(tmp_path / "neg.txt")}
    # As corpus text, each example is split into sentences.
    assert [e.text for e in readers.class_files(spec, tmp_path, log, "sentence")] == [
        "déçu", "Great phone.", "Love it!", "works"]


def test_class_file_without_lines_or_missing_is_an_error(tmp_path):
    (tmp_path / "pos.txt").write_text("fine\n")
    (tmp_path / "neg.txt").write_text("\n  \n")
    spec = CustomDataset(format="class_files", files={"pos": "pos.txt", "neg": "neg.txt"})
    with pytest.raises(PipelineError, match=r"neg.txt: class file for label 'neg' has no lines"):
        list(readers.class_files(spec, tmp_path, DecodeLog()))
    spec = CustomDataset(format="class_files", files={"pos": "pos.txt", "x": "nope.txt"})
    with pytest.raises(PipelineError, match=r"nope.txt: class file for label 'x' not found"):
        list(readers.class_files(spec, tmp_path, DecodeLog()))


def test_csv_and_tsv_columns_by_header_name(tmp_path):
    (tmp_path / "t.csv").write_text('id,body,topic\n1,"Printer jams, again",hw\n'
                                    '2,"Reset my ""password""",acct\n\n')
    spec = CustomDataset(format="csv", file="t.csv", text_column="body", label_column="topic")
    assert list(readers.delimited(spec, tmp_path, DecodeLog())) == [
        ("hw", "Printer jams, again"), ("acct", 'Reset my "password"')]
    (tmp_path / "t.tsv").write_text('label\ttext\nhw\tsays "hello"\n')
    spec = CustomDataset(format="tsv", file="t.tsv")
    assert list(readers.delimited(spec, tmp_path, DecodeLog())) == [("hw", 'says "hello"')]


def test_csv_missing_column_or_short_row_is_an_error(tmp_path):
    (tmp_path / "t.csv").write_text("text,category\nhello,a\n")
    spec = CustomDataset(format="csv", file="t.csv")
    with pytest.raises(PipelineError, match=r"t.csv: no column 'label' \(header: text, category\)"):
        list(readers.delimited(spec, tmp_path, DecodeLog()))
    (tmp_path / "t.csv").write_text("text,label\nhello,a\nshort\n")
    with pytest.raises(PipelineError, match=r"t.csv: line 3: 1 fields, header has 2"):
        list(readers.delimited(spec, tmp_path, DecodeLog()))


def test_csv_unterminated_quote_is_reported_where_it_starts(tmp_path):
    (tmp_path / "t.csv").write_text('text,label\nfine,a\n"never closed,b\nmore,a\nlast,b\n')
    spec = CustomDataset(format="csv", file="t.csv")
    with pytest.raises(PipelineError, match=r"t.csv: line 3: a quoted field starting on this "
                                            r"line is never closed$"):
        list(readers.delimited(spec, tmp_path, DecodeLog()))
    # a quoted field over several lines is fine, and later rows keep their own line numbers
    (tmp_path / "t.csv").write_text('text,label\n"two\nlines",a\nshort\n')
    with pytest.raises(PipelineError, match=r"t.csv: line 4: 1 fields"):
        list(readers.delimited(spec, tmp_path, DecodeLog()))


def test_csv_field_limit_is_raised_to_16_mib_and_beyond_is_one_error(tmp_path):
    spec = CustomDataset(format="csv", file="t.csv")
    long = "word " * 60_000                                # 300k chars > Python's 131072
    (tmp_path / "t.csv").write_text(f'text,label\n"{long}",a\nshort one,b\n')
    examples = list(readers.delimited(spec, tmp_path, DecodeLog()))
    assert [e.label for e in examples] == ["a", "b"] and len(examples[0].text) == len(long)
    (tmp_path / "t.csv").write_text(f'text,label\nok,a\n"{"x" * (readers.CSV_FIELD_LIMIT + 1)}",b\n')
    with pytest.raises(PipelineError, match=r"t.csv: line 3: a field is longer than 16777216"):
        list(readers.delimited(spec, tmp_path, DecodeLog()))


def test_read_dispatches_registry_and_custom_names(tmp_path, make_cfg):
    tree(tmp_path / "data" / "raw", "inaugural", {"1789-Washington.txt": "Fellow-Citizens. Hi.\n"})
    (tmp_path / "data" / "custom").mkdir(parents=True)
    (tmp_path / "data" / "custom" / "c.csv").write_text("text,label\nhello,a\nbye,b\n")
    cfg = make_cfg(**{"data.custom.mine": {"format": "csv", "file": "data/custom/c.csv"},
                      "data.corpus": ["inaugural", "mine"], "data.labelled": "mine"})
    log = DecodeLog()
    assert [e.text for e in readers.read(cfg, "inaugural", log, "sentence")] == [
        "Fellow-Citizens.", "Hi."]
    assert list(readers.read(cfg, "mine", log, "example")) == [("a", "hello"), ("b", "bye")]
    readers.check_available(cfg, ["inaugural", "mine"])
    with pytest.raises(PipelineError, match=r"run the download stage first"):
        readers.check_available(cfg, ["brown"])
