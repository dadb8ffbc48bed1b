"""One row per upstream protocol: what a provider `type` means, in one place.

config.py reads from it which types exist, their default base URL and the keys each accepts;
adapters/__init__.py builds its tables from it (which module speaks a type, which can answer
whole). Adding a protocol is an adapter module, its line in `adapters.MODULES` and a row here.
Pure data: it imports nothing from the gateway, so config.py and the adapters can both read it.
"""

from __future__ import annotations

from dataclasses import dataclass

# The keys every provider whose upstream is reached over HTTP accepts (besides `type`).
REMOTE_KEYS = ("base_url", "api_key", "models", "timeouts", "headers", "price_in", "price_out")
# The keys a bundled model accepts (the gateway runs it, so there is no URL, key or price).
BUNDLED_KEYS = ("timeouts",)


@dataclass(frozen=True, slots=True)
class UpstreamProtocol:
    """What the gateway knows about one provider `type`.

    `adapter`: the module of llms/adapters/ that speaks it. `base_url`: the default when the
    config gives none (None for a bundled model, whose address the gateway knows). `extra_keys`:
    the config keys it accepts beyond REMOTE_KEYS (or BUNDLED_KEYS). `answers_whole`: asked
    non-stream by a non-stream client, it sends one JSON document (converted once, instead of
    per token); the others are streamed and folded. `bearer_key`: its `api_key` goes in an
    `Authorization` header (so credentials in its base URL would clash). `discovers_models`:
    without `models`, its models are asked of the server. `bundled`: the gateway runs it.
    """

    name: str
    adapter: str
    base_url: str | None
    extra_keys: tuple[str, ...] = ()
    answers_whole: bool = False
    bearer_key: bool = False
    discovers_models: bool = False
    bundled: bool = False

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key a provider of this type accepts, besides `type`."""
        return (*(BUNDLED_KEYS if self.bundled else REMOTE_KEYS), *self.extra_keys)


PROTOCOLS: dict[str, UpstreamProtocol] = {
    row.name: row
    for row in (
        UpstreamProtocol(
            "openai",
            adapter="openai",
            base_url="https://api.openai.com/v1",
            # `responses`: the upstream serves POST /responses itself (native passthrough);
            # `completions`: it serves POST /completions (default true; false: through chat).
            extra_keys=("auth", "include_usage", "responses", "completions"),
            answers_whole=True,
            bearer_key=True,
        ),
        # The bundled model is llama.cpp's server, which speaks the OpenAI protocol.
        UpstreamProtocol(
            "local",
            adapter="openai",
            base_url=None,
            extra_keys=("model", "model_path", "n_ctx", "threads", "parallel"),
            answers_whole=True,
            bundled=True,
        ),
        UpstreamProtocol(
            "ollama",
            adapter="ollama",
            base_url="http://127.0.0.1:11434",
            bearer_key=True,
            discovers_models=True,
        ),
        UpstreamProtocol(
            "anthropic",
            adapter="anthropic",
            base_url="https://api.anthropic.com",
            extra_keys=("max_tokens",),
        ),
        UpstreamProtocol(
            "gemini", adapter="gemini", base_url="https://generativelanguage.googleapis.com/v1beta"
        ),
        # AWS Bedrock's Converse API; each request signed with SigV4 (llms/sigv4.py), or sent
        # with a Bedrock API key as a bearer token.
        UpstreamProtocol(
            "bedrock",
            adapter="bedrock",
            base_url="https://bedrock-runtime.{region}.amazonaws.com",
            extra_keys=("region", "access_key_id", "secret_access_key", "session_token"),
            answers_whole=True,
            bearer_key=True,
        ),
        # Accenture's AI Refinery: OpenAI's chat completions at {base_url}/v1/chat/completions.
        UpstreamProtocol(
            "airefinery",
            adapter="airefinery",
            base_url="https://api.airefinery.accenture.com",
            extra_keys=("include_usage", "auth"),
            answers_whole=True,
            bearer_key=True,
        ),
        # Azure OpenAI: a deployment per model, the `api-key` header (or `auth`: Entra ID).
        UpstreamProtocol(
            "azure",
            adapter="azure",
            base_url=None,
            extra_keys=("include_usage", "auth", "api_version"),
            answers_whole=True,
        ),
        # Google Vertex AI: the Gemini protocol, a service account's token ({location} is a key).
        UpstreamProtocol(
            "vertex",
            adapter="vertex",
            base_url="https://{location}-aiplatform.googleapis.com",
            extra_keys=("project", "location", "credentials_file"),
        ),
    )
}
