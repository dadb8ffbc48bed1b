"""The adapter table: provider `type` -> the module that speaks its protocol.

Which module serves which type, and which types answer whole, is llms/protocols.py's (one row
per protocol); here is only the module each row names.
"""

from __future__ import annotations

from llms.adapters import airefinery, anthropic, azure, bedrock, gemini, ollama, openai, vertex
from llms.adapters.base import Adapter, WholeAnswers
from llms.protocols import PROTOCOLS

# The modules `UpstreamProtocol.adapter` names.
MODULES: dict[str, Adapter] = {
    "openai": openai,
    "ollama": ollama,
    "anthropic": anthropic,
    "gemini": gemini,
    "airefinery": airefinery,
    "azure": azure,
    "vertex": vertex,
    "bedrock": bedrock,
}


def _whole(name: str, module: Adapter) -> WholeAnswers:
    """The module, as one that can ask for a whole answer (protocols.py says it can)."""
    if not all(hasattr(module, f) for f in ("build_whole_request", "new_whole_converter")):
        raise TypeError(f"protocols.py says `{name}` answers whole; its adapter cannot")
    return module  # type: ignore[return-value]


ADAPTERS: dict[str, Adapter] = {name: MODULES[row.adapter] for name, row in PROTOCOLS.items()}

# Asked non-stream by a non-stream client, these answer whole: one JSON document is converted
# instead of one per token. The others stream, and the chunks are folded.
WHOLE_ANSWERS: dict[str, WholeAnswers] = {
    name: _whole(name, ADAPTERS[name]) for name, row in PROTOCOLS.items() if row.answers_whole
}

__all__ = ["ADAPTERS", "MODULES", "WHOLE_ANSWERS", "Adapter", "WholeAnswers"]
