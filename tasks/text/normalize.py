"""The one tokeniser, shared by the word2vec corpus, the classifier data and the saved model.

Rules follow Kim (2014)'s `clean_str` (the reference for the classifier text):
1. every character outside `A-Za-z0-9(),!?'` and backtick becomes a space;
2. clitics split off: `'s 've n't 're 'd 'll` become separate tokens (`don't` -> `do n't`);
3. `, ! ( ) ?` become separate tokens (Kim's code wrote `\\(`; we keep the bare bracket);
4. runs of white space collapse; the result is stripped and, if `lowercase`, lowercased
   (after rule 1 only ASCII is left, so Python's and TensorFlow's lowercasing agree).

`RULES` is a list of (RE2-compatible pattern, replacement) pairs applied in order, so the same
list drives Python's `re` here and `tf.strings.regex_replace` inside the saved CNN model:
training-time and serving-time text handling cannot drift (a test checks they agree).
"""

from __future__ import annotations

import re

RULES: list[tuple[str, str]] = [
    (r"[^A-Za-z0-9(),!?'`]", " "),
    (r"'s", " 's"),
    (r"'ve", " 've"),
    (r"n't", " n't"),
    (r"'re", " 're"),
    (r"'d", " 'd"),
    (r"'ll", " 'll"),
    (r",", " , "),
    (r"!", " ! "),
    (r"\(", " ( "),
    (r"\)", " ) "),
    (r"\?", " ? "),
    (r"\s{2,}", " "),
]

_COMPILED = [(re.compile(pattern), repl) for pattern, repl in RULES]


def clean_str(text: str, lowercase: bool = True) -> str:
    """Normalise one sentence to space-separated tokens (Kim's clean_str)."""
    for pattern, repl in _COMPILED:
        text = pattern.sub(repl, text)
    text = text.strip()
    return text.lower() if lowercase else text


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """`clean_str` split on spaces."""
    cleaned = clean_str(text, lowercase)
    return cleaned.split(" ") if cleaned else []
