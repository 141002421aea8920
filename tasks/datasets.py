"""The dataset registry: every public dataset the pipeline knows, by name.

Each entry states where the archive lives (the URL NLTK's own downloader uses), its size and
checksums (md5 as published in NLTK's data index, sha256 measured on the same bytes), and which
reader in `tasks.readers` turns the extracted files into sentences or labelled examples.
`DATA_MIRROR` (a folder or base URL) is tried first, with the URL's basename as file name.

Users add their own labelled data in params (`data.custom`), not here.
"""

from __future__ import annotations

from dataclasses import dataclass

NLTK_BASE = "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora"


@dataclass(frozen=True)
class DatasetSpec:
    """A downloadable dataset. `labelled` datasets also yield (label, text) examples."""

    name: str
    url: str
    size: int | None          # bytes; None when not published
    md5: str | None
    sha256: str | None
    reader: str               # function name in tasks.readers
    labelled: bool = False
    archive: str = "zip"      # zip | none (a single text file)

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def _nltk(name: str, size: int, md5: str, sha256: str, reader: str,
          labelled: bool = False) -> DatasetSpec:
    return DatasetSpec(name, f"{NLTK_BASE}/{name}.zip", size, md5, sha256, reader, labelled)


REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        _nltk("sentence_polarity", 490256, "5cdc0cae7f558040d050c90eb2b72e97",
              "6e1ed4405b65c7eabf1d199a7f7c437091ac21da0ea7467b410a74062574566b",
              "sentence_polarity", labelled=True),
        _nltk("movie_reviews", 4004848, "155de2b77c6834dd8eea7cbe88e93acb",
              "a41211ae685019137410268134db6a1a14428c89b671eb83056151a878539008",
              "movie_reviews", labelled=True),
        _nltk("brown", 3314357, "a0a8630959d3d937873b1265b0a05497",
              "9b275f9b3b95d7bd66ccfb7cd259f445a13bbe5d1f4107aba09fd3e8364bafa6", "brown"),
        _nltk("abc", 1487851, "ffb36b67ff24cbf7daaf171c897eb904",
              "129bb6001beb828049a90a59b7dd3c2f0594a47012e48fc5177dfae38e658565", "plain_text"),
        _nltk("state_union", 808757, "044f2d20c592b17a26ac0102111833c9",
              "366c1dc82b2abf896f42b2ec50ba802a0141a29f75d29ca48a7a243ce5bfbe8d", "plain_text"),
        _nltk("webtext", 646297, "6c7680030aae5c997b1370f832545c6a",
              "9e32dbae4879464b8f420a0dc721855bb26167b720d7695588d2ca2aeadf501a", "plain_text"),
        _nltk("inaugural", 346476, "4e01cc9505ed7f9d04a330e67fb45509",
              "7c5fb5793e31fbeae12bf1aa0ffda5336468f07cedb50654c6d31ca384e2046b", "plain_text"),
        # text8: ~17M words on one line; no checksum is published, so only the size is checked.
        DatasetSpec("text8", "http://mattmahoney.net/dc/text8.zip", 31344016, None, None,
                    "text8"),
    ]
}


def known_names() -> list[str]:
    return sorted(REGISTRY)
