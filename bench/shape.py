"""Stream shapes named by model id, and the deterministic content each shape carries.

A model id such as ``bench-c20-d0-f0-s8`` asks the fake upstream for 20 content chunks, 0 ms
between chunks, 0 ms before the first chunk and about 8 tokens per chunk. The upstream builds its
answer from :func:`content_pieces`; the load generator calls the same function to know what the
client must receive, so any chunk lost, duplicated, reordered or re-encoded shows up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"bench-c(\d+)-d(\d+)-f(\d+)-s(\d+)")

# Token-sized pieces (a few bytes each, like real deltas) that exercise JSON escaping and UTF-8 on
# the way through the gateway: quote, backslash, control characters, HTML-ish characters, accents,
# CJK and an astral-plane emoji. 23 entries, a prime, so consecutive chunks differ.
_VOCAB: tuple[str, ...] = (
    " the",
    " gate",
    "way",
    " relays",
    " every",
    " tok",
    "en",
    " naï",
    "ve",
    " café",
    " 日本",
    "🙂",
    ' "',
    "\\",
    "\t",
    "\n",
    " <b>",
    " &",
    "—",
    " Ω",
    " plain",
    " ok",
    ".",
)


@dataclass(frozen=True)
class Shape:
    """How one fake upstream answer is paced and sized."""

    chunks: int
    delay_ms: int
    first_ms: int
    size: int

    @property
    def model(self) -> str:
        """The model id that asks for this shape."""
        return f"bench-c{self.chunks}-d{self.delay_ms}-f{self.first_ms}-s{self.size}"


def parse_model(model: str) -> Shape | None:
    """Return the shape a model id asks for, or None if the id is not a bench model."""
    match = _NAME.fullmatch(model)
    if match is None:
        return None
    chunks, delay_ms, first_ms, size = (int(group) for group in match.groups())
    if chunks < 1 or size < 1:
        return None
    return Shape(chunks=chunks, delay_ms=delay_ms, first_ms=first_ms, size=size)


def content_pieces(shape: Shape) -> tuple[str, ...]:
    """The content of each chunk, in order; the answer is their concatenation.

    Each piece starts with its index so that a duplicated or reordered chunk cannot go unnoticed.
    """
    pieces = []
    vocab_len = len(_VOCAB)
    for index in range(shape.chunks):
        tokens = (_VOCAB[(index * shape.size + k) % vocab_len] for k in range(shape.size - 1))
        pieces.append(f" #{index}" + "".join(tokens))
    return tuple(pieces)
