"""Our FastAGI server (asyncio streams), replacing panoramisk's ``fast_agi.Application``.

panoramisk 1.4's FastAGI loops without yielding when a client closes inside the header block
(one port probe freezes the process), cannot route plain functions on Python 3.11, and catches
BaseException. This server reads the header with a timeout and a line limit, treats EOF as the
end of the session, keeps a reference to every session task, and drains on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import structlog

from telephony.agi_protocol import (
    MAX_ENV_LINES,
    MAX_LINE_BYTES,
    AgiEnvironment,
    AgiProtocolError,
    AgiReply,
    ReplyKind,
    parse_environment,
    parse_reply,
    quote_argument,
    reply_is_complete,
)

log = structlog.get_logger(__name__)


HANGUP_NOTICE_S = 0.1  # how long a -1 reply waits for Asterisk's HANGUP notice before asking


class AgiHangup(Exception):
    """The channel is gone (caller hung up, or Asterisk closed the session)."""


class AgiCommandError(Exception):
    """Asterisk refused a command (510, 520) or it failed (result=-1 on a live channel)."""


@dataclass(frozen=True)
class RecordResult:
    """How a recording ended: 'dtmf' (with the key), 'silence', 'timeout' or 'hangup'."""

    ended_by: str
    digit: str
    samples: int


GapObserver = Callable[[float], None]


class AgiSession:
    """One FastAGI session: send commands, get replies.

    ``on_gap`` hears every stretch the channel waited on us: from the session's start or a reply
    to our next command (or the session's end) — dead air the controller caused, whatever the
    cause (a slow Redis, a busy event loop). ``on_step`` hears only the time from a reply to our
    next command: what the controller adds to each AGI step (hotline_agi_step_seconds).
    """

    def __init__(
        self,
        env: AgiEnvironment,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        command_timeout_s: float,
        *,
        on_gap: GapObserver | None = None,
        on_step: GapObserver | None = None,
    ) -> None:
        self.env = env
        self._reader = reader
        self._writer = writer
        self._command_timeout_s = command_timeout_s
        self._on_gap = on_gap
        self._on_step = on_step
        self._waiting_since = time.monotonic()  # the channel waits on us from here
        self._replied = False  # a reply came: the next command ends an AGI step
        self.hung_up = False
        # one timer per session, not one per command (asyncio.timeout's timer handle a command
        # was a visible share of the controller's CPU): each command moves the deadline, the
        # timer fires at the deadline it was set for and goes on to the later one
        self._deadline: float | None = None  # of the command in flight
        self._timer: asyncio.TimerHandle | None = None
        self._waiter: asyncio.Task[object] | None = None
        self._expired = False

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + self._command_timeout_s
        self._waiter = asyncio.current_task()
        if self._timer is None:
            self._timer = loop.call_at(self._deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self._deadline is None or self._waiter is None:
            return  # no command in flight: the next one sets the timer again
        loop = asyncio.get_running_loop()
        if loop.time() < self._deadline:  # a later command's deadline
            self._timer = loop.call_at(self._deadline, self._expire)
            return
        self._expired = True
        self._waiter.cancel()

    def close(self) -> None:
        """The session is over: its timer goes."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def gap_ended(self) -> None:
        """We answer the channel now (a command, or the end of the session)."""
        if self._on_gap is not None and not self.hung_up:
            self._on_gap(time.monotonic() - self._waiting_since)

    async def _read_line(self) -> str:
        try:
            raw = await self._reader.readline()
        except (ValueError, asyncio.LimitOverrunError):
            raise AgiProtocolError(f"AGI reply line longer than {MAX_LINE_BYTES} bytes") from None
        except ConnectionError:
            raw = b""
        if not raw:
            self.hung_up = True
            raise AgiHangup("Asterisk closed the AGI session")
        return raw.decode("utf-8", errors="replace").rstrip("\r\n")

    async def command(self, *words: str) -> AgiReply:
        """Send one command (words already quoted where needed) and return its reply. The last
        gate before Asterisk: a line break inside the command, or a command longer than res_agi's
        line buffer (whose rest Asterisk would run as a command of its own), is a ValueError and
        nothing is sent."""
        if self.hung_up and self._writer.is_closing():
            raise AgiHangup("the AGI session is closed")
        line = " ".join(words)
        data = line.encode("utf-8")
        if len(data) > MAX_COMMAND_BYTES or b"\n" in data or b"\r" in data:
            raise ValueError(f"an AGI command must be one line of at most {MAX_COMMAND_BYTES} bytes: {data[:40]!r}…")
        self.gap_ended()
        if self._on_step is not None and self._replied:
            self._on_step(time.monotonic() - self._waiting_since)
        self._writer.write(data + b"\n")
        self._arm()
        try:
            await self._writer.drain()
            lines: list[str] = []
            while not reply_is_complete(lines):
                text = await self._read_line()
                if text == "HANGUP" and not lines:
                    self.hung_up = True  # out-of-band notice; the real reply follows
                    continue
                lines.append(text)
        except asyncio.CancelledError:
            if self._expired:
                self._expired = False
                task = asyncio.current_task()
                if task is not None and task.uncancel() == 0:  # our timer's alone, as asyncio.timeout
                    raise AgiCommandError(f"no reply to {words[0]} within {self._command_timeout_s:g} s") from None
            raise
        except ConnectionError:
            self.hung_up = True
            raise AgiHangup("AGI connection reset") from None
        finally:
            self._deadline = None
            self._waiting_since = time.monotonic()
            self._replied = True
        reply = parse_reply(lines)
        if reply.kind is ReplyKind.DEAD_CHANNEL:
            self.hung_up = True
            raise AgiHangup(reply.text)
        if reply.kind in (ReplyKind.INVALID_COMMAND, ReplyKind.USAGE):
            raise AgiCommandError(f"{line!r}: {reply.text}")
        return reply

    async def _checked(self, *words: str) -> AgiReply:
        """A command whose result -1 means failure: tell a hang-up from an error."""
        reply = await self.command(*words)
        if reply.result_int == -1:
            if await self._gone():
                self.hung_up = True
                raise AgiHangup(f"hung up during {words[0]} {words[1] if len(words) > 1 else ''}".strip())
            raise AgiCommandError(f"{' '.join(words)!r} failed: {reply.text}")
        return reply

    async def _gone(self) -> bool:
        """After a result of -1: whether the channel is gone. Asterisk writes its ``HANGUP``
        notice right after the reply of a command a hang-up ended (res_agi's loop sees the
        hang-up once the command returns), so the line is read if it comes within
        ``HANGUP_NOTICE_S``: no CHANNEL STATUS round trip on every caller who hangs up during a
        prompt. Without it (a live channel, or AGISIGHUP=no) Asterisk is asked, as before."""
        if self.hung_up:
            return True
        try:
            async with asyncio.timeout(HANGUP_NOTICE_S):
                line = await self._read_line()  # EOF: AgiHangup (Asterisk closed the session)
        except TimeoutError:
            return not await self.channel_alive()
        except AgiHangup:
            return True
        if line != "HANGUP":
            raise AgiProtocolError(f"unexpected line after a reply: {line[:80]!r}")
        self.hung_up = True
        return True

    async def channel_alive(self) -> bool:
        """Whether the channel still exists (CHANNEL STATUS)."""
        try:
            reply = await self.command("CHANNEL", "STATUS")
        except AgiHangup:
            return False
        return reply.result_int >= 0

    async def answer(self) -> None:
        await self._checked("ANSWER")

    async def stream_file(self, path: str, escape_digits: str = "") -> str:
        """Play a sound file (path without extension); returns the digit that interrupted it."""
        reply = await self._checked("STREAM", "FILE", quote_argument(path), quote_argument(escape_digits))
        return _key(reply) if reply.result_int > 0 else ""

    async def get_data(self, prompt: str, timeout_s: float, max_digits: int = 1) -> str:
        """Play ``prompt`` and collect up to ``max_digits`` keys; '' when none came in time."""
        reply = await self._checked("GET", "DATA", quote_argument(prompt), str(int(timeout_s * 1000)), str(max_digits))
        return reply.result

    async def record_file(self, path: str, max_s: int, silence_s: int, escape_digits: str = "#") -> RecordResult:
        """Record to ``path`` (no extension; WAV) after a beep. A hang-up ends it and is reported,
        not raised: the message recorded so far is the caller's and must be kept."""
        reply = await self.command(
            "RECORD",
            "FILE",
            quote_argument(path),
            "wav",
            quote_argument(escape_digits),
            str(max_s * 1000),
            "BEEP",
            f"s={silence_s}",
        )
        try:
            endpos = int(reply.extra_value("endpos") or 0)
        except ValueError:
            raise AgiProtocolError(f"RECORD FILE reply with a bad endpos: {reply.text[:80]!r}") from None
        # Asterisk replies before it closes the file (the WAV header, the last buffered frames):
        # one more round trip, answered only after RECORD's handler returned, means it is closed
        with contextlib.suppress(AgiHangup, AgiCommandError):
            await self.command("NOOP")
        if reply.result_int == -1:
            if reply.data == "hangup" or not await self.channel_alive():
                self.hung_up = True
                return RecordResult(ended_by="hangup", digit="", samples=endpos)
            raise AgiCommandError(f"RECORD FILE {path!r} failed: {reply.text}")
        if reply.data == "dtmf":
            return RecordResult(ended_by="dtmf", digit=_key(reply), samples=endpos)
        return RecordResult(ended_by="timeout" if reply.data == "timeout" else "silence", digit="", samples=endpos)

    async def exec_app(self, application: str, arguments: str) -> int:
        """Run a dialplan application (Queue, Dial …) and return its result; raises AgiHangup if the
        channel is gone when it returns."""
        reply = await self.command("EXEC", application, quote_argument(arguments))
        if reply.result_int == -2:
            raise AgiCommandError(f"no application {application!r} in Asterisk")
        if reply.result_int == -1 and await self._gone():
            self.hung_up = True
            raise AgiHangup(f"channel gone after {application}")
        return reply.result_int

    async def set_variable(self, name: str, value: str) -> None:
        await self._checked("SET", "VARIABLE", quote_argument(name), quote_argument(value))

    async def set_variables(self, values: Mapping[str, str]) -> None:
        """Set channel variables in as few round trips as it safely can: several plain ones in one
        ``EXEC MSet``, else one SET VARIABLE each. MSet splits on ',' and '=' and strips quotes, so
        it only gets plain names and values (letters, digits, ``_ - . : /``, or empty); a single
        variable, or any non-plain one in the lot (a comma, '=', a quote, a space, non-ASCII), makes
        it one quoted SET VARIABLE each, the value whole. Every argument is checked before the first
        is sent: a line break or NUL anywhere is a ValueError and nothing is set."""
        quoted = [(quote_argument(name), quote_argument(value)) for name, value in values.items()]
        if len(values) > 1 and all(_is_plain(name, value) for name, value in values.items()):
            await self.exec_app("MSet", ",".join(f"{name}={value}" for name, value in values.items()))
            return
        for name, value in quoted:
            await self._checked("SET", "VARIABLE", name, value)

    async def get_variable(self, name: str) -> str | None:
        reply = await self.command("GET", "VARIABLE", quote_argument(name))
        return reply.data if reply.result == "1" else None

    async def hangup(self) -> None:
        with contextlib.suppress(AgiHangup):
            await self.command("HANGUP")
        self.hung_up = True


# res_agi reads a command into AGI_BUF_LEN (2048) bytes, its newline included and one kept for the
# end of the string: a longer line is cut there, and the rest is read as the next command
MAX_COMMAND_BYTES = 2046
_PLAIN_NAME = re.compile(r"_{0,2}[A-Za-z][A-Za-z0-9_]{0,63}")
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.:/-]{0,256}")


def _is_plain(name: str, value: str) -> bool:
    """Whether MSet carries ``name=value`` intact (it splits on ',' and '=', strips quotes)."""
    return bool(_PLAIN_NAME.fullmatch(name) and _PLAIN_VALUE.fullmatch(value))


def _key(reply: AgiReply) -> str:
    """The key a result stands for (Asterisk sends its character code, e.g. 49 for "1")."""
    if not 0 < reply.result_int <= 0x10FFFF:
        raise AgiProtocolError(f"result is not a key: {reply.text[:80]!r}")
    return chr(reply.result_int)


AgiHandler = Callable[[AgiSession], Awaitable[None]]


@dataclass
class AgiStats:
    """Counters for /metrics and health."""

    sessions_total: int = 0
    sessions_active: int = 0
    sessions_failed: int = 0
    bad_requests: int = 0
    unauthenticated: int = 0  # closed unserved: the AGI URL lacked this installation's key


class AgiServer:
    """Serves FastAGI on host:port; routes by script path (``agi://host/ivr`` → ``ivr``).

    With a ``secret``, the path must start with it (``agi://host/<secret>/ivr``, as the rendered
    dialplan writes it): any other local process could otherwise play Asterisk, forge call
    records and change seats. A session without it is closed before any route runs, counted
    (``stats.unauthenticated``) and logged without what it sent."""

    def __init__(
        self,
        host: str,
        port: int,
        routes: Mapping[str, AgiHandler],
        *,
        header_timeout_s: float = 5.0,
        command_timeout_s: float = 600.0,
        on_gap: GapObserver | None = None,
        on_step: GapObserver | None = None,
        secret: str | None = None,
    ) -> None:
        self._on_gap = on_gap
        self._on_step = on_step
        self._host = host
        self._port = port
        self._routes = dict(routes)
        self._secret = secret.encode("utf-8") if secret else None
        self._header_timeout_s = header_timeout_s
        self._command_timeout_s = command_timeout_s
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self.stats = AgiStats()

    @property
    def serving(self) -> bool:
        return self._server is not None and self._server.is_serving()

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self._host, self._port, limit=MAX_LINE_BYTES)
        log.info("agi.listening", host=self._host, port=self.port)

    async def close(self, drain_timeout_s: float = 10.0) -> None:
        """Stop accepting, let sessions finish for up to ``drain_timeout_s``, then cancel them."""
        if self._server is not None:
            self._server.close()
        if self._sessions:
            log.info("agi.draining", sessions=len(self._sessions))
            _, pending = await asyncio.wait(set(self._sessions), timeout=drain_timeout_s)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._server is not None:
            await self._server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._serve(reader, writer), name="agi-session")
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _read_environment(self, reader: asyncio.StreamReader) -> AgiEnvironment | None:
        async with asyncio.timeout(self._header_timeout_s):
            try:
                block = await reader.readuntil(b"\n\n")
            except asyncio.IncompleteReadError:
                return None  # closed inside the header: a probe or a dying channel
            except asyncio.LimitOverrunError:
                raise AgiProtocolError(f"AGI environment longer than {MAX_LINE_BYTES} bytes") from None
        lines = block.decode("utf-8", errors="replace").rstrip("\n").split("\n")
        if len(lines) > MAX_ENV_LINES:
            raise AgiProtocolError("AGI environment has too many lines")
        return parse_environment([line.rstrip("\r") for line in lines])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                env = await self._read_environment(reader)
            except (TimeoutError, AgiProtocolError, ValueError, ConnectionError) as exc:
                self.stats.bad_requests += 1
                log.warning("agi.bad_request", error=str(exc) or type(exc).__name__)
                return
            if env is None:
                self.stats.bad_requests += 1
                log.info("agi.closed_before_header")
                return
            env = self._authenticated(env)
            if env is None:
                self.stats.unauthenticated += 1
                peer = writer.get_extra_info("peername")
                log.warning("agi.unauthenticated", peer=f"{peer[0]}:{peer[1]}" if peer else "?")
                return
            handler = self._routes.get(env.script)
            if handler is None:
                self.stats.bad_requests += 1
                log.warning("agi.unknown_script", script=env.script)
                return
            session = AgiSession(
                env, reader, writer, self._command_timeout_s, on_gap=self._on_gap, on_step=self._on_step
            )
            try:
                await self._run_handler(handler, session)
            finally:
                session.close()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _authenticated(self, env: AgiEnvironment) -> AgiEnvironment | None:
        """The session's environment with the key taken out of its script path, or None when
        the key is missing or wrong (compared in constant time)."""
        if self._secret is None:
            return env
        key, _, script = env.script.partition("/")
        if not hmac.compare_digest(key.encode("utf-8", "surrogateescape"), self._secret):
            return None
        scrubbed = {
            name: value.replace(f"{key}/", "", 1) if name in ("agi_network_script", "agi_request") else value
            for name, value in env.variables.items()
        }
        return dataclasses.replace(env, script=script, variables=scrubbed)

    async def _run_handler(self, handler: AgiHandler, session: AgiSession) -> None:
        self.stats.sessions_total += 1
        self.stats.sessions_active += 1
        try:
            await handler(session)
            session.gap_ended()  # Asterisk goes on with the dialplan now
        except AgiHangup:
            log.info("agi.hangup", script=session.env.script, call_id=session.env.get("uniqueid"))
        except Exception:
            # One call's failure never takes the server down; the dialplan falls back.
            self.stats.sessions_failed += 1
            log.exception("agi.handler_failed", script=session.env.script)
        finally:
            self.stats.sessions_active -= 1
