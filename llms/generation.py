"""One upstream attempt as an async iterable of chunk batches, from its commit point to its end.

The commit point is the first chunk that carries output (content, reasoning, a tool call, a
refusal, a finish or usage): role-only and empty chunks are held back until then, so a provider
that fails after sending only those can still be replaced (routing.py tries the next one). Once
committed, a `Generation` is what every client-facing API reads:

    async for batch in generation:   # the first batch is the committed `first`
        ...                          # encode it, write it, log it, fold it
    await generation.collect(fold.add)   # or: every remaining batch, for a non-stream answer
    await generation.aclose()            # always, in a `finally`: closes the upstream

It keeps the request record it is given: the provider (routing sets it at the commit), when the
first output was delivered, the chunks delivered, the usage and the finish reason. A batch counts
as delivered when the reader comes back for the next one (or the stream ends), so a batch the
client never got (it left while it was written) is not counted. The idle watchdog is the upstream
read's deadline (`timeouts.idle_s` between reads, `total_s` overall); nothing runs per chunk but
the conversion itself: no task, no queue, no lock.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from llms.adapters.base import Converter
from llms.config import ProviderConfig
from llms.errors import GatewayError, UpstreamMalformed, UpstreamTimeout
from llms.framing import Decoder
from llms.native import NativeConverter
from llms.telemetry.record import RequestRecord, finish_reason_of
from llms.upstream import READ_ERRORS, UpstreamCall
from llms.wire import Chunk

log = logging.getLogger("llms.generation")


def to_json_each(chunks: list[Chunk]) -> tuple[list[bytes], UpstreamMalformed | None]:
    """Each chunk as JSON, up to the first one that cannot be encoded, and that failure."""
    out: list[bytes] = []
    dumps = orjson.dumps
    for item in chunks:
        try:
            out.append(dumps(item))
        except orjson.JSONEncodeError:
            # orjson refuses objects nested over 255 levels (it parses up to 1024).
            return out, UpstreamMalformed(
                "The upstream sent a chunk the gateway cannot encode (nested too deeply)."
            )
    return out, None


class EncodedBatch(list[Chunk]):
    """The committed batch (`Generation.first`) with each chunk's JSON (`json`), which the
    commit's check made: chat completions' encoder writes these bytes rather than encoding
    every chunk again (a fast upstream's whole answer is one read, so all of it is this batch).
    Nothing changes a chunk once its converter made it, so the bytes stay the chunks'."""

    __slots__ = ("json",)

    def __init__(self, chunks: list[Chunk], json: list[bytes]) -> None:
        super().__init__(chunks)
        self.json = json


def check_committable(chunks: list[Chunk]) -> list[bytes]:
    """Raise UpstreamMalformed for chunks that could not reach a client whole: a choice
    `index` that is not an integer, or one that cannot be encoded. Checked once, at the commit,
    so a provider sending them is replaced; after it, the encoders notice what they cannot take.
    Returns each chunk as JSON (`orjson.dumps`)."""
    _check_indexes([item["choices"] for item in chunks])
    try:
        return list(map(orjson.dumps, chunks))
    except orjson.JSONEncodeError:
        _, error = to_json_each(chunks)
        assert error is not None
        raise error from None


def check_values(chunks: list[Chunk]) -> None:
    """`check_committable` for an API that writes events of its own from the choices' values
    (Responses, Messages): the same checks on the choices only (a chunk's other keys never
    reach those clients), and no JSON kept. One orjson call for the batch's choices costs
    about half of encoding every chunk, which is all chat's encoder needs."""
    choices = [item["choices"] for item in chunks]
    _check_indexes(choices)
    try:
        orjson.dumps(choices)
    except orjson.JSONEncodeError:
        raise UpstreamMalformed(
            "The upstream sent a chunk the gateway cannot encode (nested too deeply)."
        ) from None


def _check_indexes(choices: list[list[Any]]) -> None:
    for each in choices:
        for choice in each:
            if type(choice["index"]) is not int:
                raise UpstreamMalformed(
                    "The upstream sent a choice whose `index` is not an integer."
                )


def carries_output(chunk: Chunk) -> bool:
    """True for a chunk past which the answer is committed to this provider."""
    if chunk.get("usage") or chunk.get("native_output"):
        return True
    for choice in chunk["choices"]:
        if choice["finish_reason"] is not None:
            return True
        delta: Mapping[str, Any] = choice["delta"]
        if (
            delta.get("content")
            or delta.get("reasoning_content")
            or delta.get("tool_calls")
            or delta.get("refusal")
        ):
            return True
    return False


class Generation:
    """One upstream attempt: `commit()` fills `first`; then an async iterable of chunk batches.

    Iterating yields `first`, then the chunks of each upstream read, and ends when the upstream
    ended normally; a failure is raised as a GatewayError (after the chunks before it).
    """

    __slots__ = (
        "_call",
        "_chat_json",
        "_converter",
        "_decoder",
        "_end_by",
        "_ended",
        "_feed_all",
        "_finish",
        "_given",
        "_idle",
        "_loop",
        "_pending",
        "first",
        "native",
        "on_failure",
        "provider",
        "record",
        "tap",
    )

    def __init__(
        self,
        call: UpstreamCall,
        decoder: Decoder,
        converter: Converter,
        provider: ProviderConfig,
        native: NativeConverter | None = None,
        *,
        chat_json: bool = True,
    ) -> None:
        self._call = call
        self._chat_json = chat_json  # StreamMeta.chat_json
        self._decoder = decoder
        self._converter = converter
        # A converter that takes a read's events in one call (the OpenAI one), looked up once.
        self._feed_all = getattr(converter, "feed_all", None)
        self._loop = asyncio.get_running_loop()
        self._idle = provider.timeouts.idle_s
        total = provider.timeouts.total_s
        self._end_by = math.inf if total is None else self._loop.time() + total
        self._ended = False
        self._pending: GatewayError | None = None
        self._given = 0  # chunks handed out and not yet counted as delivered
        self._finish: str | None = None
        self.provider = provider
        # A native attempt's converter (llms/native.py): its chunks carry the upstream's own
        # events, which the client's API writes through `NativeStream` / `NativeLog`.
        self.native = native
        self.first: list[Chunk] = []
        # The request's record, filled as the answer goes (routing sets it at the commit).
        self.record: RequestRecord | None = None
        # Told about a failure after the commit (the provider's circuit breaker listens).
        self.on_failure: Callable[[GatewayError], None] | None = None
        # Sees every batch after `first` (the request log keeps the answer with `log_content`).
        self.tap: Callable[[list[Chunk]], None] | None = None

    @property
    def converter(self) -> Converter:
        return self._converter

    def __aiter__(self) -> Generation:
        return self

    async def __anext__(self) -> list[Chunk]:
        given = self._given
        if given:
            # The reader is back for more: the batch it was given reached its client.
            record = self.record
            if record is not None:
                if record.first_output is None:
                    record.first_output = self._loop.time()
                record.chunks += given
        batch = self.first
        if batch:
            # Nothing parsed is kept while the upstream is silent: an idle stream stays small.
            self.first = []
        else:
            try:
                pending = self._pending
                if pending is not None:
                    self._pending = None
                    raise pending
                if not self._ended:
                    # The chunks of the next upstream read that yields any, [] at the end of
                    # the body; read here rather than in a coroutine of its own: an idle stream
                    # waits in this frame, one fewer kept (~0.25 KiB). The read is
                    # UpstreamCall.read's steps inline, a coroutine fewer a read (callgrind:
                    # ~1.5k instructions a paced chunk); upstream.py still translates what it
                    # raises (read_failed).
                    call = self._call
                    content = call.content
                    watchdog = call.watchdog
                    while True:
                        watchdog.expect_by(min(self._loop.time() + self._idle, self._end_by))
                        try:
                            data = await content.readany()
                        except READ_ERRORS as exc:
                            call.read_failed(exc)
                        finally:
                            watchdog.expires = None
                        batch = []
                        self._convert(data, batch)
                        if batch or self._ended:
                            break
                if not batch:
                    self._end()
                    raise StopAsyncIteration
                if self.tap is not None:
                    self.tap(batch)
            except GatewayError as error:
                self._given = 0
                self.fault(error)
                raise
        given = self._given = len(batch)
        # A paced read's one chunk of one choice is looked at here, with no call.
        choices = batch[0]["choices"] if given == 1 else None
        if choices is not None and len(choices) == 1:
            if choices[0]["finish_reason"] is not None:
                self._finish = str(choices[0]["finish_reason"])
        else:
            reason = finish_reason_of(batch)
            if reason is not None:
                self._finish = reason
        return batch

    async def next(self) -> list[Chunk] | None:
        """The next batch; None once the stream has ended normally."""
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            return None

    async def collect(self, into: Callable[[list[Chunk]], object]) -> None:
        """Give every remaining batch to `into` (a non-stream answer's fold), to the end.

        Batch by batch rather than one list, so the fold's size bound (`server.max_answer_mb`)
        stops an answer too large before all of it is held.
        """
        async for batch in self:
            into(batch)

    async def aclose(self) -> None:
        """Close the upstream (idempotent); the record keeps the usage known so far."""
        self.close()

    def close(self) -> None:
        self._ended = True
        self._call.close()
        if self.record is not None:
            self.record.usage = self._converter.usage

    def fault(self, error: GatewayError) -> None:
        """A failure after the commit: the upstream's, or a chunk of it that no client can be
        sent (an encoder could not take it). Counts against the provider."""
        if self.on_failure is not None:
            self.on_failure(error)

    def _end(self) -> None:
        """The upstream ended normally."""
        self._given = 0
        record = self.record
        if record is not None:
            record.finish_reason = self._finish
            record.usage = self._converter.usage

    def _convert(self, data: bytes, out: list[Chunk]) -> None:
        """Decode and convert one read (b"" = the end of the body) into `out`.

        A provider error after some chunks of the same read is held in `_pending` and raised
        on the next call, so the chunks before it are delivered however the bytes were split.
        """
        converter = self._converter
        try:
            if data:
                events = self._decoder.feed(data)
                feed_all = self._feed_all
                if feed_all is not None:
                    # One call for the read's events (the OpenAI converter), to the same end.
                    feed_all(events, out)
                    if converter.done:
                        self.close()
                    return
                for event in events:
                    out += converter.feed(event)
                    if converter.done:
                        self.close()
                        return
                return
            for event in self._decoder.flush():
                out += converter.feed(event)
            if not converter.done:
                out += converter.close()
            self.close()
        except GatewayError as error:
            self._fail(error, out)
        except Exception:
            # Converters are pure functions of the upstream's bytes, so whatever they raise
            # on a shape nobody foresaw (an `index` that is a list…) is the upstream's fault.
            log.warning(
                "provider %s sent a chunk its converter cannot take",
                self.provider.name,
                exc_info=True,
            )
            self._fail(
                UpstreamMalformed(
                    "The upstream sent a chunk of a shape the gateway cannot translate."
                ),
                out,
            )

    def _fail(self, error: GatewayError, out: list[Chunk]) -> None:
        """End the attempt; the error is raised now, or after the chunks already in `out`."""
        self.close()
        if not out:
            raise error
        self._pending = error

    async def commit(self, deadline: float) -> None:
        """Read until the first chunk that carries output (or the end); fills `first`.

        A failure before any output propagates (so routing may try another provider); after
        output, even within the same read, it is delivered after that output.
        """
        call = self._call
        held = self.first
        while True:
            try:
                data = await call.read(deadline)
            except UpstreamTimeout:
                # Before the first output this is the first-token (or answer) deadline, not
                # silence between chunks.
                raise UpstreamTimeout("The upstream did not answer in time.") from None
            batch: list[Chunk] = []
            self._convert(data, batch)
            held += batch
            committed = any(carries_output(item) for item in held)
            if self._pending is not None and not committed:
                error, self._pending = self._pending, None
                raise error
            if committed or self._ended:
                if self._chat_json:
                    self.first = EncodedBatch(held, check_committable(held))
                else:
                    check_values(held)
                return
