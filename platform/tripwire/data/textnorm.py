"""Text normalisation applied before tokenisation, saved with the weights like every other transform.

Social-media text carries meaning the tokenizer cannot see: the MiniLM/BERT uncased vocabulary maps
every emoji to ``[UNK]`` (11 % of OLID tweets have one, and 😂 🤣 🙄 🖕 say a lot about tone), and a
hashtag such as ``#BuildTheWall`` becomes sub-word noise. Each step here rewrites those into words the
vocabulary has. Steps are named in ``preprocessing.text.normalize`` and run in the order given, in
Ray Data (training, scans) and in Serve alike, so a checkpoint trained with them is served with them.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Callable, Sequence

# Code points that only modify the emoji before them (skin tones, variation selectors, joiners):
# they carry no meaning the model needs, and naming them would spend tokens.
_MODIFIERS = {0x200D, 0xFE0E, 0xFE0F, *range(0x1F3FB, 0x1F400)}
_REGIONAL_INDICATORS = range(0x1F1E6, 0x1F200)
_HASHTAG = re.compile(r"#(\w+)")
# Word boundaries inside a hashtag: lower->Upper ("buildThe"), ACRONYM->Word ("USAToday"), letter<->digit.
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")


def _is_emoji(char: str) -> bool:
    # Symbols ("So") above the arrows block: pictographs, dingbats, emoticons. Below it are ©, ®, °
    # and friends, which the vocabulary already knows.
    return ord(char) >= 0x2190 and unicodedata.category(char) == "So"


def emoji_names(text: str) -> str:
    """Replaces each emoji with its Unicode name in lower case ("😂" -> " face with tears of joy ").

    A run of the same emoji is named once (a row of ten 😂 says the same as one, and would otherwise
    use the token budget); flags (regional-indicator pairs) become " flag "; modifiers are dropped.
    """
    out: list[str] = []
    previous = ""
    changed = False
    for char in text:
        code = ord(char)
        if code in _MODIFIERS:
            changed = True
            continue
        if code in _REGIONAL_INDICATORS:
            word = "flag"
        elif _is_emoji(char):
            word = unicodedata.name(char, "emoji").lower()
        else:
            out.append(char)
            if not char.isspace():  # "😂 😂" is still one run
                previous = ""
            continue
        if word != previous:
            out.append(f" {word} ")
        previous, changed = word, True
    return re.sub(r" {2,}", " ", "".join(out)).strip() if changed else text


def hashtag_words(text: str) -> str:
    """Splits hashtags into words at case and digit changes ("#BuildTheWall2020" -> "build the wall 2020")."""
    return _HASHTAG.sub(lambda m: _CAMEL.sub(" ", m.group(1)).lower(), text)


NORMALIZERS: dict[str, Callable[[str], str]] = {
    "emoji_names": emoji_names,
    "hashtag_words": hashtag_words,
}


def check_normalizers(names: Sequence[str]) -> None:
    """Raises ValueError naming any step that does not exist (configs are checked when loaded)."""
    unknown = [n for n in names if n not in NORMALIZERS]
    if unknown:
        raise ValueError(f"unknown text normalizer(s) {unknown}; available: {sorted(NORMALIZERS)}")


def normalize(text: str, names: Sequence[str]) -> str:
    """Applies the named steps in order."""
    for name in names:
        text = NORMALIZERS[name](text)
    return text
