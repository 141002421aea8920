"""The shared tokeniser follows Kim's clean_str."""

from __future__ import annotations

import pytest

from tasks.text.normalize import clean_str, tokenize


@pytest.mark.parametrize(
    ("raw", "tokens"),
    [
        ("It's good, isn't it?", ["it", "'s", "good", ",", "is", "n't", "it", "?"]),
        ("We'll see (maybe)!", ["we", "'ll", "see", "(", "maybe", ")", "!"]),
        ("they've  gone\tHOME\n", ["they", "'ve", "gone", "home"]),
        ("a -- b ; c", ["a", "b", "c"]),
        ("", []),
        ("   ", []),
    ],
)
def test_tokenize(raw, tokens):
    assert tokenize(raw) == tokens


def test_lowercase_is_optional():
    assert clean_str("Hello World", lowercase=False) == "Hello World"
    assert clean_str("Hello World") == "hello world"
