"""CLIP's text context: ViT-B-32 (like every open_clip model with the OpenAI tokenizer) reads at most 77 tokens, the
start and end tokens included; longer prompts are cut by the tokenizer mid-phrase. :func:`fit_clip_context` cuts an
enhanced prompt at a clause or word boundary instead, so CLIP sees whole phrases.

Token counts come from open_clip's BPE tokenizer (no weights needed). Import :mod:`anyskill.sim.render` before
calling these in a process that renders (open_clip loads torchvision; see that module).
"""

from __future__ import annotations

import functools
import re

CONTEXT_LENGTH = 77
"""tokens CLIP encodes, start and end tokens included."""
TOKENIZER_MODEL = "ViT-B-32"
"""the reward's CLIP (:data:`anyskill.reward.clip_model.DEFAULT_MODEL`); its tokenizer is the OpenAI BPE."""


@functools.cache
def _tokenizer():
    import open_clip

    return open_clip.get_tokenizer(TOKENIZER_MODEL)


def clip_token_count(text: str) -> int:
    """Tokens CLIP uses for ``text``, start and end tokens included."""
    return len(_tokenizer().encode(text)) + 2


def fits_clip_context(text: str) -> bool:
    return clip_token_count(text) <= CONTEXT_LENGTH


def fit_clip_context(text: str) -> str:
    """``text`` if it fits CLIP's context; else its longest prefix of whole clauses (cut after ``,``, ``;`` or ``.``)
    that fits, else its longest prefix of whole words that fits. Trailing punctuation is dropped from a cut text."""
    if fits_clip_context(text):
        return text
    clauses = [m.end() for m in re.finditer(r"[,;.]", text)]
    for end in reversed(clauses):
        cut = text[:end].rstrip(" ,;.")
        if cut and fits_clip_context(cut):
            return cut
    words = text.split()
    lo, hi = 0, len(words)  # binary search: the longest prefix of words that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits_clip_context(" ".join(words[:mid])):
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo]).rstrip(" ,;.")
