"""The adapter table: provider `type` -> the module that speaks its protocol."""

from __future__ import annotations

from llms.adapters import anthropic, gemini, ollama, openai
from llms.adapters.base import Adapter, WholeAnswers

ADAPTERS: dict[str, Adapter] = {
    "openai": openai,
    # The bundled model is llama.cpp's server, which speaks the OpenAI protocol.
    "local": openai,
    "ollama": ollama,
    "anthropic": anthropic,
    "gemini": gemini,
}

# Asked non-stream by a non-stream client, these answer whole: one JSON document is converted
# instead of one per token. The others stream, and the chunks are folded.
WHOLE_ANSWERS: dict[str, WholeAnswers] = {"openai": openai, "local": openai}

__all__ = ["ADAPTERS", "WHOLE_ANSWERS", "Adapter", "WholeAnswers"]
