"""Configuration: YAML file -> validated, typed settings.

Every problem is reported as ``ConfigError("<key path>: <problem>")`` so an operator sees
which key to fix; unknown keys are errors too (a typo must not silently fall back to a
default). The reference of every key is docs/responder.md."""
from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Any, Optional

import yaml

HASH_ALGORITHMS = ("sha1", "sha256", "sha384", "sha512")


class ConfigError(Exception):
    """A configuration problem; the message starts with the offending key path."""


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class IssuerConfig:
    name: str
    ca_cert: str
    index: str
    signer_cert: Optional[str]
    signer_key: str
    signer_key_passphrase_file: Optional[str]

    @property
    def delegated(self) -> bool:
        return self.signer_cert is not None


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 10240
    max_get_path_bytes: int = 8190
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    send_timeout: float = 30.0
    max_live_signings: int = 64
    max_request_certs: int = 32


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = True
    path: str = "/metrics"
    listen: Optional[ListenAddress] = None


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "json"
    requests: bool = True


@dataclass(frozen=True)
class Config:
    listen: tuple
    issuers: tuple
    path_prefix: str = "/"
    workers: int = 1
    event_loop: str = "uvloop"
    response_validity: float = 8 * 3600.0
    refresh_margin: float = 4 * 3600.0
    this_update_backdate: float = 300.0
    nonce_policy: str = "echo"
    unknown_serial_policy: str = "unknown"
    responder_id: str = "key_hash"
    presign_hash_algorithms: tuple = ("sha1", "sha256")
    cache_max_entries: int = 100000
    reload_interval: float = 0.5
    index_max_age: Optional[float] = None
    health_path: str = "/healthz"
    limits: Limits = field(default_factory=Limits)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def bind_addresses(self) -> list:
        """``(key, address)`` of every socket the responder binds; the key is for messages."""
        keyed = [(f"listen[{i}]", address) for i, address in enumerate(self.listen)]
        if self.metrics.enabled and self.metrics.listen is not None:
            keyed.append(("metrics.listen", self.metrics.listen))
        return keyed


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any, key: str) -> float:
    """Seconds from a number or a string like ``90s``, ``15m``, ``8h``, ``7d``."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a duration (seconds or e.g. '15m'), got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION.match(value):
        number, unit = _DURATION.match(value).groups()
        seconds = float(number) * _UNIT_SECONDS[unit]
    else:
        raise ConfigError(f"{key}: expected a duration (seconds or e.g. '15m'), got {value!r}")
    if seconds < 0:
        raise ConfigError(f"{key}: must not be negative")
    return seconds


def parse_listen(value: Any, key: str) -> ListenAddress:
    """``host:port``, ``[v6]:port``; the host must be an IP address or a name."""
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected 'host:port', got {value!r}")
    match = re.match(r"^\[([^\]]+)\]:(\d+)$", value) or re.match(r"^([^:\[\]]*):(\d+)$", value)
    if not match:
        raise ConfigError(f"{key}: expected 'host:port' or '[ipv6]:port', got {value!r}")
    host, port = match.group(1), int(match.group(2))
    if value.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"{key}: {host!r} is not an IPv6 address") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{key}: port {port} out of range 0-65535")
    return ListenAddress(host or "0.0.0.0", port)


class _Section:
    """Reads one mapping, tracking which keys were consumed so leftovers are reported."""

    def __init__(self, data: Any, path: str):
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path or 'config'}: expected a mapping, got {type(data).__name__}")
        self.data = data
        self.path = path
        self.used: set = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, default: Any = None) -> Any:
        self.used.add(name)
        return self.data.get(name, default)

    def has(self, name: str) -> bool:
        return self.data.get(name) is not None

    def string(self, name: str, default: Optional[str] = None, choices: tuple = ()) -> Optional[str]:
        value = self.get(name, default)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.key(name)}: expected a non-empty string, got {value!r}")
        if choices and value not in choices:
            raise ConfigError(f"{self.key(name)}: must be one of {', '.join(choices)}; got {value!r}")
        return value

    def integer(self, name: str, default: int, minimum: int = 0) -> int:
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.key(name)}: expected an integer, got {value!r}")
        if value < minimum:
            raise ConfigError(f"{self.key(name)}: must be >= {minimum}, got {value}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.key(name)}: expected true or false, got {value!r}")
        return value

    def duration(self, name: str, default: Optional[float]) -> Optional[float]:
        value = self.get(name, default)
        return None if value is None else parse_duration(value, self.key(name))

    def readable_file(self, name: str, required: bool = True) -> Optional[str]:
        value = self.get(name)
        if value is None:
            if required:
                raise ConfigError(f"{self.key(name)}: required")
            return None
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.key(name)}: expected a file path, got {value!r}")
        if not os.path.isfile(value):
            raise ConfigError(f"{self.key(name)}: no such file: {value}")
        if not os.access(value, os.R_OK):
            raise ConfigError(f"{self.key(name)}: not readable: {value}")
        return value

    def url_path(self, name: str, default: str) -> str:
        value = self.string(name, default)
        if not value.startswith("/"):
            raise ConfigError(f"{self.key(name)}: must start with '/', got {value!r}")
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used, key=str)
        if unknown:
            raise ConfigError(f"{self.key(str(unknown[0]))}: unknown key")


def _issuer(data: Any, path: str, index: int) -> IssuerConfig:
    section = _Section(data, path)
    ca_cert = section.readable_file("ca_cert")
    index_file = section.get("index")
    if not isinstance(index_file, str) or not index_file:
        raise ConfigError(f"{section.key('index')}: required (path of the CA's index.txt)")
    # The index may be missing at start (pushed later); its directory must exist.
    if not os.path.isdir(os.path.dirname(os.path.abspath(index_file))):
        raise ConfigError(f"{section.key('index')}: directory does not exist: {index_file}")
    signer_cert = section.readable_file("signer_cert", required=False)
    if signer_cert:
        if section.has("ca_key"):
            raise ConfigError(f"{section.key('ca_key')}: set either signer_cert/signer_key or ca_key, not both")
        signer_key = section.readable_file("signer_key")
        passphrase = section.readable_file("signer_key_passphrase_file", required=False)
    else:
        if section.has("signer_key"):
            raise ConfigError(f"{section.key('signer_cert')}: required when signer_key is set")
        if not section.has("ca_key"):
            raise ConfigError(f"{section.key('signer_cert')}: required (or ca_key to sign with the CA key)")
        signer_key = section.readable_file("ca_key")
        passphrase = section.readable_file("ca_key_passphrase_file", required=False)
        if section.has("signer_key_passphrase_file"):
            raise ConfigError(f"{section.key('signer_key_passphrase_file')}: use ca_key_passphrase_file with ca_key")
    name = section.string("name", os.path.splitext(os.path.basename(ca_cert))[0] or f"issuer{index}")
    section.finish()
    return IssuerConfig(name, ca_cert, index_file, signer_cert, signer_key, passphrase)


def config_from_dict(data: Any) -> Config:
    top = _Section(data, "")
    listen_raw = top.get("listen", ["127.0.0.1:2560"])
    if isinstance(listen_raw, str):
        listen_raw = [listen_raw]
    if not isinstance(listen_raw, list) or not listen_raw:
        raise ConfigError("listen: expected a non-empty list of 'host:port'")
    listen = tuple(parse_listen(item, f"listen[{i}]") for i, item in enumerate(listen_raw))

    issuers_raw = top.get("issuers")
    if not isinstance(issuers_raw, list) or not issuers_raw:
        raise ConfigError("issuers: required, a non-empty list of issuing CAs")
    issuers = tuple(_issuer(item, f"issuers[{i}]", i) for i, item in enumerate(issuers_raw))
    names = [issuer.name for issuer in issuers]
    for i, name in enumerate(names):
        if names.index(name) != i:
            raise ConfigError(f"issuers[{i}].name: duplicate issuer name {name!r}")

    prefix = top.url_path("path_prefix", "/")
    validity = top.duration("response_validity", 8 * 3600.0)
    if validity < 60:
        raise ConfigError("response_validity: must be at least 60 seconds")
    margin = top.duration("refresh_margin", validity / 2)
    if not 0 < margin < validity:
        raise ConfigError("refresh_margin: must be greater than 0 and less than response_validity")

    presign = top.get("presign_hash_algorithms", ["sha1", "sha256"])
    if not isinstance(presign, list) or any(alg not in HASH_ALGORITHMS for alg in presign):
        raise ConfigError(f"presign_hash_algorithms: expected a list of {', '.join(HASH_ALGORITHMS)}; got {presign!r}")

    limits_section = _Section(top.get("limits"), "limits")
    limits = Limits(
        max_body_bytes=limits_section.integer("max_body_bytes", 10240, minimum=64),
        max_get_path_bytes=limits_section.integer("max_get_path_bytes", 8190, minimum=256),
        header_timeout=limits_section.duration("header_timeout", 10.0),
        body_timeout=limits_section.duration("body_timeout", 10.0),
        send_timeout=limits_section.duration("send_timeout", 30.0),
        max_live_signings=limits_section.integer("max_live_signings", 64, minimum=1),
        max_request_certs=limits_section.integer("max_request_certs", 32, minimum=1),
    )
    limits_section.finish()
    if limits.header_timeout <= 0 or limits.body_timeout <= 0:
        raise ConfigError("limits.header_timeout: timeouts must be greater than 0")
    if not 1 <= limits.send_timeout <= 3600:
        raise ConfigError("limits.send_timeout: must be between 1 second and 1 hour")

    metrics_section = _Section(top.get("metrics"), "metrics")
    metrics_listen = metrics_section.get("listen")
    metrics = MetricsConfig(
        enabled=metrics_section.boolean("enabled", True),
        path=metrics_section.url_path("path", "/metrics"),
        listen=parse_listen(metrics_listen, "metrics.listen") if metrics_listen is not None else None,
    )
    metrics_section.finish()

    log_section = _Section(top.get("log"), "log")
    log = LogConfig(
        level=log_section.string("level", "info", choices=("debug", "info", "warning", "error")),
        format=log_section.string("format", "json", choices=("json", "text")),
        requests=log_section.boolean("requests", True),
    )
    log_section.finish()

    health_path = top.url_path("health_path", "/healthz")
    if metrics.enabled and metrics.listen is None and metrics.path == health_path:
        raise ConfigError("metrics.path: must differ from health_path")

    config = Config(
        listen=listen,
        issuers=issuers,
        path_prefix=prefix,
        workers=top.integer("workers", 1, minimum=1),
        event_loop=top.string("event_loop", "uvloop", choices=("uvloop", "asyncio")),
        response_validity=validity,
        refresh_margin=margin,
        this_update_backdate=top.duration("this_update_backdate", 300.0),
        nonce_policy=top.string("nonce_policy", "echo", choices=("echo", "ignore")),
        unknown_serial_policy=top.string("unknown_serial_policy", "unknown", choices=("unknown", "revoked")),
        responder_id=top.string("responder_id", "key_hash", choices=("key_hash", "name")),
        presign_hash_algorithms=tuple(presign),
        cache_max_entries=top.integer("cache_max_entries", 100000, minimum=0),
        reload_interval=top.duration("reload_interval", 0.5),
        index_max_age=top.duration("index_max_age", None),
        health_path=health_path,
        limits=limits,
        metrics=metrics,
        log=log,
    )
    if not 0.05 <= config.reload_interval <= 60:
        raise ConfigError("reload_interval: must be between 0.05 and 60 seconds")
    if config.this_update_backdate >= validity / 2:
        raise ConfigError("this_update_backdate: must be less than half of response_validity")
    top.finish()
    _check_bind_addresses(config)
    return config


def _check_bind_addresses(config: Config) -> None:
    """What would only fail (or misbehave) when binding, caught before."""
    seen = {}
    for key, address in config.bind_addresses():
        if address.port == 0:
            if config.workers > 1:
                # Each worker would bind a free port of its own: unrelated ports, one worker each.
                raise ConfigError(f"{key}: port 0 (any free port) needs workers: 1, got workers: {config.workers}")
            continue
        for other, other_key in seen.items():
            if _same_socket(address, other):
                covered = f" ({other})" if other != address else ""
                raise ConfigError(f"{key}: {address} is already used by {other_key}{covered}")
        seen[address] = key


def _same_socket(one: ListenAddress, other: ListenAddress) -> bool:
    """Two addresses one socket would answer for: equal, or one the wildcard of the other's
    family on the same port (0.0.0.0:8080 covers 127.0.0.1:8080; with SO_REUSEPORT both
    bind, and the kernel sends clients of 127.0.0.1 to whichever is more specific)."""
    if one.port != other.port:
        return False
    if one.host == other.host:
        return True
    family = {":" in one.host, ":" in other.host}
    return len(family) == 1 and bool({one.host, other.host} & {"0.0.0.0", "::"})


def load_config(path: str) -> Config:
    try:
        with open(path, "rb") as handle:
            data = yaml.safe_load(handle)
    except OSError as exc:
        raise ConfigError(f"config: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config: invalid YAML in {path}: {exc}") from None
    return config_from_dict(data)
