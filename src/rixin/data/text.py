"""Text helpers shared by the cleaning blocks and deduplication: CJK detection and word
splitting (the quality rules count these words, near-dedup shingles them)."""

from __future__ import annotations

import re

# Scripts written without spaces between words: each run of them is cut into words by jieba,
# and word list terms in them match without word boundaries. Hangul is absent: Korean uses spaces.
CJK_RANGES = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
CJK_CHAR = re.compile(f"[{CJK_RANGES}]")
LATIN_WORD = re.compile(f"[^\\W_{CJK_RANGES}]+")  # a letter/digit run outside CJK
_RUN = re.compile(f"([{CJK_RANGES}]+)|[^\\W_{CJK_RANGES}]+")


def split_words(text: str) -> list[str]:
    """Words in order: letter/digit runs, and jieba words inside runs of CJK characters."""
    if not CJK_CHAR.search(text):
        return LATIN_WORD.findall(text)
    import rjieba

    words: list[str] = []
    for match in _RUN.finditer(text):
        if match.group(1):
            words.extend(rjieba.cut(match.group(1)))
        else:
            words.append(match.group(0))
    return words
