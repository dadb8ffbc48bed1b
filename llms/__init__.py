"""llms: an OpenAI-compatible LLM gateway that streams every token honestly."""

from llms.config import load_config
from llms.server.app import create_app

__version__ = "0.1.0"

__all__ = ["__version__", "create_app", "load_config"]
