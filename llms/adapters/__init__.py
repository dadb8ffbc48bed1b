"""The adapter table: provider `type` -> the module that speaks its protocol."""

from __future__ import annotations

from llms.adapters import anthropic, gemini, ollama, openai
from llms.adapters.base import Adapter

ADAPTERS: dict[str, Adapter] = {
    "openai": openai,
    # The bundled model is llama.cpp's server, which speaks the OpenAI protocol.
    "local": openai,
    "ollama": ollama,
    "anthropic": anthropic,
    "gemini": gemini,
}

__all__ = ["ADAPTERS", "Adapter"]
