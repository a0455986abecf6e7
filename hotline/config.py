"""The controller's typed, frozen configuration, loaded from config.yaml.

Each package owns the model of its own section (telephony/config.py, acd/config.py,
voicemail/config.py, tickets/config.py, recordings/config.py, web/config.py); ``Config``
composes them with the app shell's own sections (platform, redis, paths, prompts, logging).

Unknown keys and wrong types are errors that name the file, the line and the key path.
Units are in the names (``ring_timeout_s``). Defaults are the embedded demo: everything on
loopback, Redis and Asterisk started locally by ``hotline12345 stack``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from acd.config import AcdConfig, SeatConfig
from common.config_model import ConfigModel
from common.redis_sentinel import parse_node
from common.yamlsource import KeyPath, YamlDocument, YamlSyntaxError, parse_yaml
from dialback.config import DialbackConfig
from knowledge.config import KnowledgeConfig
from monitor.config import MonitorConfig
from outbound.config import OutboundConfig
from recordings.config import RecordingsConfig
from reports.config import ReportsConfig
from telephony.config import AgiConfig, AsteriskConfig, SipConfig, TransfersConfig, WebrtcConfig
from telephony.values import AreaCode, PlatformId, PromptText, unsafe_path_reason
from tickets.config import TicketsConfig
from tickets.model import PLATFORM_CODES, platform_code
from units.config import UnitsConfig
from voicemail.config import AsrConfig, SpoolConfig
from wallboard.config import WallboardConfig
from web.config import HttpConfig

# keys whose values an error message never repeats
_SECRET_KEYS = frozenset({"ami_secret", "secret", "url", "webhook_token", "webhook_url"})
# a password in a URL shown in an error (``redis: redis://:pw@host`` where a section belongs)
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s'\"]*:)[^@\s'\"]*@")


class PlatformConfig(ConfigModel):
    """Which of the 17 platforms this controller runs (province or one prefecture)."""

    id: PlatformId = "kunming"
    name: str = "昆明市12345政务服务便民热线"
    area_code: AreaCode = "0871"
    province: bool = False
    timezone: str = "Asia/Shanghai"

    @field_validator("id")
    @classmethod
    def _own_ticket_prefix(cls, value: str) -> str:
        # a platform not in PLATFORM_CODES numbers its tickets with its id in capitals: "km" would
        # start its numbers like 昆明's (KM-…) and a ticket would name the wrong platform
        if value not in PLATFORM_CODES and platform_code(value) in PLATFORM_CODES.values():
            raise ValueError(
                f"its ticket numbers would start {platform_code(value)}-, like another platform's: choose another id"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class RedisSentinelConfig(ConfigModel):
    """Reach the primary through Redis Sentinel (common/redis_sentinel.py): the sentinels at
    ``nodes`` name ``service_name``'s primary, and clients follow a failover to the new one.

    The data nodes' password is ``redis.url``'s or ``redis.password_file``'s as without Sentinel
    (the URL's host and port are then unused; its database number is kept); ``password_file``
    here is the sentinels' own (their ``requirepass``), if they have one. After each
    transaction the client waits (``WAIT``) for ``replicas_to_ack`` replicas, at most
    ``ack_timeout_ms`` (docs/reliability.md)."""

    service_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
    nodes: Annotated[tuple[str, ...], Field(min_length=1, max_length=16)]
    password_file: Path | None = None
    replicas_to_ack: Annotated[int, Field(ge=0, le=16)] = 1
    ack_timeout_ms: Annotated[int, Field(ge=10, le=10_000)] = 500

    @field_validator("nodes")
    @classmethod
    def _host_port(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for node in value:
            host, _port = parse_node(node)
            if not _HOST.fullmatch(host):
                raise ValueError(f"{node!r}: {host!r} is not a host name or an IP address")
        if len(set(value)) != len(value):
            raise ValueError("a sentinel is named twice")
        return value


_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|[0-9A-Fa-f:.]{2,45})")


class RedisConfig(ConfigModel):
    """Redis holds call records, seat and queue state, tickets and streams.

    The password (or an ACL user's) is the URL's (``redis://user:password@host:port/0``) when it
    has one, else the content of ``password_file`` (made, random, when missing: the Redis that
    ``hotline12345 stack`` starts requires it); ``password_file: null`` and none in the URL: no
    AUTH. ``rediss://`` is TLS, checked against ``tls_ca_file`` (or the system's CAs)."""

    url: str = Field(default="redis://127.0.0.1:6379/0", repr=False)
    password_file: Path | None = Path("var/redis-password")
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None  # a client certificate, for a server that asks for one
    tls_key_file: Path | None = None
    call_record_ttl_days: Annotated[int, Field(ge=1, le=3650)] = 400
    # a read on the call path (IVR, a seat's phone) waits at most this for Redis, an IVR step at
    # most twice it in all, then goes on with a safe default; writes never wait (done behind)
    op_timeout_ms: Annotated[int, Field(ge=20, le=5000)] = 500
    sentinel: RedisSentinelConfig | None = None  # the primary is whichever the sentinels name

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        try:
            urlsplit(value).port  # noqa: B018 (raises on a bad port)
        except ValueError:
            raise ValueError("the port in the URL is not a number from 0 to 65535") from None
        return value

    @field_validator("tls_ca_file", "tls_cert_file", "tls_key_file")
    @classmethod
    def _tls_needs_rediss(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and not str(info.data.get("url", "")).startswith("rediss://"):
            raise ValueError("a TLS file needs a rediss:// (TLS) url")
        return value

    @model_validator(mode="after")
    def _tls(self) -> RedisConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together (a client certificate and its key)")
        if self.sentinel is not None and not self.url.startswith("redis://"):
            raise ValueError("with sentinel, the url must be redis:// (TLS and unix sockets are not supported there)")
        return self


class PathsConfig(ConfigModel):
    """Folders; relative paths are taken from the folder config.yaml is in."""

    runtime_dir: Path = Path("var")
    spool_dir: Path = Path("var/spool")
    prompts_dir: Path = Path("prompts")
    dialplans_dir: Path = Path("dialplans")


class PromptsConfig(ConfigModel):
    """Prompts of Asterisk's fallback route (the IVR's own prompts are in the dialplan).

    Synthesised with espeak-ng (Mandarin) unless a recorded ``<prompts_dir>/<name>.wav`` exists.
    Digits are written as words: espeak-ng reads "12345" as a number (一万两千…).
    """

    fallback_hold: PromptText = "您好，正在为您转接人工服务，请稍候。"
    fallback: PromptText = "您好，话务员暂时无法接听。请在提示音后留言，我们会尽快回复。"
    goodbye: PromptText = "感谢您的来电，再见。"
    # while a caller waits for a seat (acd.announce_every_s); {n} is a count in words
    queue_next: PromptText = "您是下一位，请稍候。"
    queue_ahead: PromptText = "您前面还有{n}位来电。"
    queue_wait: PromptText = "预计等待{n}分钟。"
    # a seat's feature code (*21 login, *22 logout, *23 pause, *24 ready) worked, or did not
    feature_ok: PromptText = "设置成功。"
    feature_failed: PromptText = "设置失败。"
    # a voicemail node could not keep the message (spool full or failing); the caller is on the
    # callback list (a dialplan node's failed_prompt overrides this)
    voicemail_failed: PromptText = "抱歉，暂时无法为您保存留言。我们会尽快给您回电，您也可以稍后再拨。"

    @field_validator("queue_ahead", "queue_wait")
    @classmethod
    def _counts(cls, value: str) -> str:
        if "{n}" not in value:
            raise ValueError("must contain {n} where the number is said")
        try:
            value.format(n="")
        except (KeyError, IndexError, ValueError):
            raise ValueError("{n} is the only {…} it may contain (write a brace as {{ or }})") from None
        return value


class LoggingConfig(ConfigModel):
    """structlog output: JSON when not a TTY unless forced."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class Config(ConfigModel):
    """The whole controller configuration (one platform)."""

    platform: PlatformConfig = PlatformConfig()
    sip: SipConfig = SipConfig()
    webrtc: WebrtcConfig = WebrtcConfig()  # browser phones' WSS (seats[].phone: browser)
    seats: tuple[SeatConfig, ...] = ()
    acd: AcdConfig = AcdConfig()
    transfers: TransfersConfig = TransfersConfig()
    asterisk: AsteriskConfig = AsteriskConfig()
    agi: AgiConfig = AgiConfig()
    http: HttpConfig = HttpConfig()
    redis: RedisConfig = RedisConfig()
    paths: PathsConfig = PathsConfig()
    prompts: PromptsConfig = PromptsConfig()
    recordings: RecordingsConfig = RecordingsConfig()
    spool: SpoolConfig = SpoolConfig()
    asr: AsrConfig = AsrConfig()
    tickets: TicketsConfig = TicketsConfig()
    units: UnitsConfig = UnitsConfig()
    knowledge: KnowledgeConfig = KnowledgeConfig()
    monitor: MonitorConfig = MonitorConfig()  # supervisors' phones for listen / whisper / barge
    wallboard: WallboardConfig = WallboardConfig()
    dialback: DialbackConfig = DialbackConfig()  # seats' callbacks to missed callers (dialback/)
    reports: ReportsConfig = ReportsConfig()
    outbound: OutboundConfig = OutboundConfig()
    logging: LoggingConfig = LoggingConfig()

    @model_validator(mode="after")
    def _unique_seats(self) -> Config:
        ids = [seat.id for seat in self.seats]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"seat ids must be unique: {', '.join(duplicates)} given twice")
        if self.acd.blended_callbacks and self.dialback.trunk not in self.sip.trunks:
            raise ValueError(f"acd.blended_callbacks: dialback.trunk {self.dialback.trunk!r} is not in sip.trunks")
        unknown = sorted(set(self.acd.auto_login) - set(ids))
        if unknown:
            raise ValueError(f"acd.auto_login names seats that are not configured: {', '.join(unknown)}")
        phones = sorted(set(self.monitor.phones) - set(ids))
        if phones:
            raise ValueError(f"monitor.phones names seats that are not configured: {', '.join(phones)}")
        return self

    def dialplan_path(self) -> Path:
        """This platform's dialplan file."""
        return self.paths.dialplans_dir / f"{self.platform.id}.yaml"

    def resolved(self, base: Path) -> Config:
        """A copy whose relative paths are anchored at ``base``."""

        def anchor(path: Path) -> Path:
            return path if path.is_absolute() else (base / path).resolve()

        paths = self.paths.model_copy(
            update={
                "runtime_dir": anchor(self.paths.runtime_dir),
                "spool_dir": anchor(self.paths.spool_dir),
                "prompts_dir": anchor(self.paths.prompts_dir),
                "dialplans_dir": anchor(self.paths.dialplans_dir),
            }
        )
        asterisk = self.asterisk
        if asterisk.root is not None:
            asterisk = asterisk.model_copy(update={"root": anchor(asterisk.root)})
        asr = self.asr
        if asr.model_path is not None:
            asr = asr.model_copy(update={"model_path": anchor(asr.model_path)})
        redis_files: dict[str, object] = {
            key: anchor(path)
            for key in ("password_file", "tls_ca_file", "tls_cert_file", "tls_key_file")
            if (path := getattr(self.redis, key)) is not None
        }
        sentinel = self.redis.sentinel
        if sentinel is not None and sentinel.password_file is not None:
            redis_files["sentinel"] = sentinel.model_copy(update={"password_file": anchor(sentinel.password_file)})
        redis = self.redis.model_copy(update=redis_files)
        units = self.units.model_copy(update={"dir": anchor(self.units.dir)})
        knowledge = self.knowledge.model_copy(update={"dir": anchor(self.knowledge.dir)})
        update = {"paths": paths, "asterisk": asterisk, "asr": asr, "redis": redis}
        outbound = self.outbound
        if outbound.dnc_file is not None:
            outbound = outbound.model_copy(update={"dnc_file": anchor(outbound.dnc_file)})
        webrtc_files = {k: anchor(p) for k in ("cert_file", "key_file") if (p := getattr(self.webrtc, k)) is not None}
        update["webrtc"] = self.webrtc.model_copy(update=webrtc_files)
        return self.model_copy(update={**update, "units": units, "knowledge": knowledge, "outbound": outbound})


class ConfigError(Exception):
    """config.yaml is unreadable or invalid; the message names file, line and key path."""


def _format_path(path: KeyPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _is_secret(path: KeyPath) -> bool:
    """A secret is never echoed in an error message (it would land in logs and terminals)."""
    return any(isinstance(part, str) and (part.endswith("secret") or part.endswith("token")) for part in path)


# the folders written into Asterisk's files and dialplan (asterisk.conf, extensions.conf, …)
_ASTERISK_PATHS: tuple[KeyPath, ...] = (("paths", "runtime_dir"), ("paths", "spool_dir"), ("asterisk", "root"))


def _unsafe_paths(document: YamlDocument, config: Config) -> list[str]:
    """Folders, once anchored, that Asterisk's files cannot carry (checked after anchoring:
    the folder config.yaml is in becomes part of them)."""
    found = []
    for path in _ASTERISK_PATHS:
        section, key = path
        value = getattr(getattr(config, str(section)), str(key))
        reason = unsafe_path_reason(value) if value is not None else None
        if reason:
            position = document.position_of(path)
            where = str(position.line) if position else "?"
            shown = f"{str(value)!r} cannot go into Asterisk's files: {reason}"
            found.append(f"  {document.filename}:{where}: {_format_path(path)}: {shown}")
    return found


def _no_password(value: object) -> str:
    """``repr(value)`` with the password of any URL in it replaced by ``***``."""
    return _URL_PASSWORD.sub(r"\1***@", repr(value))


def _explain(document: YamlDocument, error: ValidationError) -> str:
    lines = [f"{document.filename}: invalid configuration ({error.error_count()} problem(s)):"]
    for problem in error.errors():
        path: KeyPath = tuple(p for p in problem["loc"] if isinstance(p, str | int))
        position = document.position_of(path)
        where = str(position.line) if position else "?"
        message = problem["msg"]
        if problem["type"] == "extra_forbidden":
            message = "unknown key"
        elif problem["type"] == "missing":
            message = "required key is missing"
        value = problem.get("input")
        hidden = problem["type"] in ("extra_forbidden", "missing") or isinstance(value, dict)
        secret = _is_secret(path) or (bool(path) and path[-1] in _SECRET_KEYS)
        shown = "" if hidden else " (value not shown: it is a secret)" if secret else f" (got {_no_password(value)})"
        lines.append(f"  {document.filename}:{where}: {_format_path(path)}: {message}{shown}")
    return "\n".join(lines)


def parse_config(text: str, filename: str, base: Path) -> Config:
    """Validate config text; raise ConfigError naming file, line and key path."""
    try:
        document = parse_yaml(text, filename)
    except YamlSyntaxError as exc:
        raise ConfigError(str(exc)) from None
    data = document.data if document.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError(f"{filename}:1: the configuration must be a mapping of sections")
    try:
        config = Config.model_validate(data).resolved(base)
    except ValidationError as exc:
        raise ConfigError(_explain(document, exc)) from None
    unsafe = _unsafe_paths(document, config)
    if unsafe:
        raise ConfigError("\n".join([f"{filename}: invalid configuration ({len(unsafe)} problem(s)):", *unsafe]))
    return config


def load_config(path: Path) -> Config:
    """Read and validate config.yaml at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the configuration is not UTF-8 text") from None
    return parse_config(text, str(path), path.resolve().parent)
