"""The controller's typed, frozen configuration, loaded from config.yaml.

Unknown keys and wrong types are errors that name the file, the line and the key path.
Units are in the names (``ring_timeout_s``). Defaults are the embedded demo: everything on
loopback, Redis and Asterisk started locally by ``hotline12345 stack``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from common.yamlsource import KeyPath, YamlDocument, YamlSyntaxError, parse_yaml
from telephony.values import (
    AmiUser,
    AreaCode,
    Host,
    IpNetwork,
    IPv4,
    PlatformId,
    PromptText,
    SeatId,
    SeatName,
    Secret,
    SipUri,
    TrunkName,
    unsafe_path_reason,
)
from tickets.model import PLATFORM_CODES, platform_code
from web.auth import ApiToken

Port = Annotated[int, Field(ge=1, le=65535)]
PositiveSeconds = Annotated[float, Field(gt=0, le=3600)]

# a seat's fixed contact: sip:[user@]host[:port] (its shape is checked by SipUri; this reads the address)
_CONTACT_ADDRESS = re.compile(r"sips?:(?:[^@;?\s]+@)?(?P<host>[A-Za-z0-9.-]+)(?::(?P<port>\d{1,5}))?")
# a secret written into an Asterisk file or a URL: printable ASCII without space, ';' or '"'
_FILE_SAFE_KEY = r"^[!#-:<-~]{16,128}$"
_URL_SAFE_KEY = r"^[A-Za-z0-9_-]{16,128}$"
# the AMI secret earlier versions shipped: public, so never accepted
_SHIPPED_AMI_KEY = "hotline-demo-secret"
# keys whose values an error message never repeats
_SECRET_KEYS = frozenset({"ami_secret", "secret", "url", "webhook_token", "webhook_url"})
# a password in a URL shown in an error (``redis: redis://:pw@host`` where a section belongs)
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s'\"]*:)[^@\s'\"]*@")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlatformConfig(_Model):
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


class OutboundTrunk(_Model):
    """A SIP peer we send calls to (transfers: province, department hotlines, 110/119/120/122).

    A trunk to another 12345 platform names it (``platform``): transfers to it carry the case
    (a hand-off record); with ``area_code``, callers who dial ``<area code>12345`` here are sent
    there (属地接听: answered by their own prefecture)."""

    host: Host
    port: Port = 5060
    platform: PlatformId | None = None
    area_code: AreaCode | None = None

    @model_validator(mode="after")
    def _area_needs_platform(self) -> OutboundTrunk:
        if self.area_code and not self.platform:
            raise ValueError("a trunk with an area_code leads to a platform: give its platform id too")
        return self


class SipConfig(_Model):
    """The carrier trunk that delivers 12345 calls, outbound trunks, and the RTP range."""

    bind_host: IPv4 = "127.0.0.1"
    port: Port = 5060
    trunk_peers: tuple[IpNetwork, ...] = ("127.0.0.1/32",)
    trunks: dict[TrunkName, OutboundTrunk] = Field(default_factory=dict)
    # a carrier that delivers every call as plain 12345 may say the caller's area in a header
    # (属地接听 without <area code>12345); "" ignores headers
    area_header: str = Field(default="X-Hotline-Area", pattern=r"^([A-Za-z][A-Za-z0-9-]{0,63})?$")
    rtp_port_min: Port = 10000
    rtp_port_max: Port = 14999

    @model_validator(mode="after")
    def _rtp_range(self) -> SipConfig:
        if self.rtp_port_max <= self.rtp_port_min:
            raise ValueError("rtp_port_max must be greater than rtp_port_min")
        return self


class AsteriskConfig(_Model):
    """How the controller reaches Asterisk (AMI) and how a managed Asterisk is run."""

    root: Path | None = Field(
        default=None,
        description="Unpacked Asterisk root from scripts/provision-asterisk.sh; None = the cache",
    )
    ami_host: Host = "127.0.0.1"
    ami_port: Port = 5038
    ami_username: AmiUser = "hotline"
    # None: generated at first start and kept in <runtime_dir>/ami-secret (0600)
    ami_secret: str | None = Field(default=None, pattern=_FILE_SAFE_KEY, repr=False)
    ami_action_timeout_s: PositiveSeconds = 5.0
    ami_ping_interval_s: PositiveSeconds = 5.0
    ami_ping_timeout_s: PositiveSeconds = 3.0
    ami_reconnect_initial_s: PositiveSeconds = 0.2
    ami_reconnect_max_s: PositiveSeconds = 5.0
    # events waiting for the controller's handlers; beyond it newer ones are dropped (counted)
    # and the state is resynced from Asterisk once the handlers catch up
    ami_event_backlog_max: Annotated[int, Field(ge=100, le=1_000_000)] = 10_000

    @field_validator("ami_secret")
    @classmethod
    def _not_public(cls, value: str | None) -> str | None:
        if value == _SHIPPED_AMI_KEY:
            raise ValueError("the demo secret earlier versions shipped is public: remove the key to have one generated")
        return value


class SeatConfig(_Model):
    """A seat: a softphone that registers (with ``secret``) or sits at a fixed ``contact``."""

    # 3-6 digits: never equal to a caller's number (7+ digits), which matters for SIP identification
    id: SeatId
    name: SeatName = ""
    secret: Secret | None = Field(default=None, repr=False)
    contact: SipUri | None = None
    skills: tuple[str, ...] = ()
    queues: tuple[str, ...] = ("general",)

    @model_validator(mode="after")
    def _reachable(self) -> SeatConfig:
        if self.secret is None and self.contact is None:
            raise ValueError("a seat needs a secret (to register) or a fixed contact")
        if self.contact is not None and self.contact_address is None:
            raise ValueError("contact must be sip:[user@]host[:port] (port 1-65535)")
        return self

    @property
    def contact_address(self) -> tuple[str, int] | None:
        """(host, port) of the fixed contact (port 5060 when it names none); None without one.
        A seat with no secret is known by this address alone (telephony/asterisk_conf.py)."""
        match = _CONTACT_ADDRESS.fullmatch(self.contact or "")
        if match is None:
            return None
        port = int(match.group("port") or 5060)
        return (match.group("host"), port) if 0 < port < 65536 else None


class TransfersConfig(_Model):
    """How long a transfer's other side may ring."""

    ring_s: Annotated[int, Field(ge=5, le=300)] = 30  # a blind transfer (the seat is already free)
    # a consultation (attended / three-way): also how long it rings after the seat hung up early;
    # unanswered then, the caller goes to the dialplan's transfer_failed node
    consult_ring_s: Annotated[int, Field(ge=5, le=300)] = 30


class AcdConfig(_Model):
    """Call distribution settings."""

    strategy: Literal["longest_idle", "fewest_calls", "round_robin", "ring_all"] = "longest_idle"
    ring_timeout_s: Annotated[float, Field(gt=0, le=120)] = 15.0  # one offer rings this long
    max_missed_offers: Annotated[int, Field(ge=1, le=10)] = 2  # then the seat is set not ready
    wrapup_s: Annotated[float, Field(ge=0, le=600)] = 5.0  # after-call work before the next offer
    # wrap-up lasts until the seat gives a disposition (POST /api/v1/seats/{id}/disposition) …
    require_disposition: bool = False
    # … or this long: then the seat is set not ready ("no disposition") until it gives one
    max_wrapup_s: Annotated[float, Field(gt=0, le=7200)] = 300.0
    relax_skills_after_s: Annotated[float, Field(gt=0, le=3600)] = 60.0  # then any seat of the queue
    announce_every_s: Annotated[int, Field(ge=0, le=600)] = 30  # position/wait announcements; 0 = none
    auto_login: tuple[str, ...] = ()  # seat ids logged in (ready) when the controller starts
    fallback_wait_s: Annotated[int, Field(ge=0, le=600)] = 60  # controller down: ring seats this long


class AgiConfig(_Model):
    """The FastAGI server Asterisk's dialplan calls."""

    host: Host = "127.0.0.1"
    port: Port = 4573
    header_timeout_s: PositiveSeconds = 5.0
    command_timeout_s: PositiveSeconds = 600.0
    # on SIGTERM, how long calls in the IVR may take to finish before their sessions are
    # closed (Asterisk then takes them down the fallback route: never dropped)
    drain_timeout_s: PositiveSeconds = 30.0
    # the key Asterisk's dialplan puts in every AGI URL; sessions without it are closed unserved.
    # None: generated at first start and kept in <runtime_dir>/agi-secret (0600)
    secret: str | None = Field(default=None, pattern=_URL_SAFE_KEY, repr=False)


class HttpConfig(_Model):
    """The REST API, websocket events, web console and /metrics."""

    host: str = "127.0.0.1"
    port: Port = 12345
    tokens: tuple[ApiToken, ...] = ()
    recent_calls_limit: Annotated[int, Field(ge=1, le=10000)] = 200


class RedisConfig(_Model):
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
        return self


class PathsConfig(_Model):
    """Folders; relative paths are taken from the folder config.yaml is in."""

    runtime_dir: Path = Path("var")
    spool_dir: Path = Path("var/spool")
    prompts_dir: Path = Path("prompts")
    dialplans_dir: Path = Path("dialplans")


class PromptsConfig(_Model):
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


class RecordingsConfig(_Model):
    """Seat-call recording (MixMonitor, both parties mixed) and how long it is kept."""

    enabled: bool = True
    retention_days: Annotated[int, Field(ge=1, le=3650)] = 180
    purge_interval_s: Annotated[float, Field(ge=10, le=86400)] = 3600


class SpoolConfig(_Model):
    """Health of the message spool (paths.spool_dir): below this free space, or not writable, no
    caller is asked for a message (they are told, routed on and called back) and health is degraded."""

    min_free_mb: Annotated[float, Field(ge=0, le=1_000_000)] = 100.0  # a 2-minute message is about 2 MB
    check_interval_s: Annotated[float, Field(gt=0, le=3600)] = 10.0


class LoggingConfig(_Model):
    """structlog output: JSON when not a TTY unless forced."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class AsrConfig(_Model):
    """Offline speech recognition of callers' messages (voicemail/asr.py, voicemail/jobs.py)."""

    # a vosk model folder: vosk-model-cn-0.22 or vosk-model-small-cn-0.22, unpacked. None: the
    # controller files tickets without transcripts (nothing waits for a worker that is not there)
    model_path: Path | None = None
    grammar: tuple[str, ...] = ()  # a closed vocabulary (tests); empty: free speech
    visibility_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 300.0  # a job's worker is presumed dead
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3  # then the job is parked for an operator
    rescan_interval_s: Annotated[float, Field(gt=0, le=3600)] = 60.0  # the spool is checked for orphans
    rescan_min_age_s: Annotated[float, Field(ge=0, le=86400)] = 300.0  # younger files may be in progress


class TicketsConfig(_Model):
    """Case tickets made from messages, and their export to the downstream handling system."""

    webhook_url: str | None = Field(default=None, pattern=r"^https?://")
    webhook_token: str | None = Field(default=None, repr=False)
    webhook_max_attempts: Annotated[int, Field(ge=1, le=100)] = 10

    @field_validator("webhook_url")
    @classmethod
    def _private_in_transit(cls, value: str | None) -> str | None:
        # a ticket carries the citizen's whole number and words: plain http only on this host
        url = urlsplit(value or "")
        if url.scheme == "http" and url.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("must be https:// (tickets carry callers' numbers); plain http:// only to this host")
        return value

    # a transfer to another platform whose call never arrived there becomes a ticket after this
    handoff_expiry_s: Annotated[float, Field(gt=0, le=86400)] = 300.0


class Config(_Model):
    """The whole controller configuration (one platform)."""

    platform: PlatformConfig = PlatformConfig()
    sip: SipConfig = SipConfig()
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
    logging: LoggingConfig = LoggingConfig()

    @model_validator(mode="after")
    def _unique_seats(self) -> Config:
        ids = [seat.id for seat in self.seats]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"seat ids must be unique: {', '.join(duplicates)} given twice")
        unknown = sorted(set(self.acd.auto_login) - set(ids))
        if unknown:
            raise ValueError(f"acd.auto_login names seats that are not configured: {', '.join(unknown)}")
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
        redis_files = {
            key: anchor(path)
            for key in ("password_file", "tls_ca_file", "tls_cert_file", "tls_key_file")
            if (path := getattr(self.redis, key)) is not None
        }
        redis = self.redis.model_copy(update=redis_files)
        return self.model_copy(update={"paths": paths, "asterisk": asterisk, "asr": asr, "redis": redis})


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
