"""Configuration validation (ocsp_responder.config): every error names its key."""
from __future__ import annotations

import pytest

from ocsp_responder.config import ConfigError, config_from_dict, load_config, parse_duration, parse_listen


@pytest.fixture
def files(tmp_path):
    for name in ("ca.pem", "signer.pem", "signer.key", "pass"):
        (tmp_path / name).write_text("x")
    return tmp_path


def minimal(files, **overrides):
    config = {
        "listen": ["127.0.0.1:2560", "[::1]:2560"],
        "issuers": [{"ca_cert": str(files / "ca.pem"), "index": str(files / "index.txt"),
                     "signer_cert": str(files / "signer.pem"), "signer_key": str(files / "signer.key")}],
    }
    config.update(overrides)
    return config


def test_defaults(files):
    config = config_from_dict(minimal(files))
    assert [str(a) for a in config.listen] == ["127.0.0.1:2560", "[::1]:2560"]
    assert config.issuers[0].name == "ca" and config.issuers[0].delegated
    assert (config.nonce_policy, config.unknown_serial_policy, config.responder_id) == ("echo", "unknown", "key_hash")
    assert config.response_validity == 8 * 3600 and config.refresh_margin == 4 * 3600
    assert config.limits.max_body_bytes == 10240 and config.health_path == "/healthz"
    assert config.event_loop == "uvloop"


@pytest.mark.parametrize("value,seconds", [(90, 90.0), ("90s", 90.0), ("15m", 900.0), ("8h", 28800.0),
                                           ("7d", 604800.0), ("250ms", 0.25), (0.5, 0.5)])
def test_durations(value, seconds):
    assert parse_duration(value, "k") == seconds


@pytest.mark.parametrize("value", ["1w", "-1", True, None, "h", [1]])
def test_bad_durations(value):
    with pytest.raises(ConfigError, match="^k: "):
        parse_duration(value, "k")


@pytest.mark.parametrize("value,expected", [("0.0.0.0:80", ("0.0.0.0", 80)), (":2560", ("0.0.0.0", 2560)),
                                            ("[::]:443", ("::", 443)), ("localhost:0", ("localhost", 0))])
def test_listen(value, expected):
    address = parse_listen(value, "listen[0]")
    assert (address.host, address.port) == expected


@pytest.mark.parametrize("value", ["2560", "::1:80", "[nothex]:80", "host:99999", 2560])
def test_bad_listen(value):
    with pytest.raises(ConfigError, match=r"^listen\[0\]: "):
        parse_listen(value, "listen[0]")


@pytest.mark.parametrize("change,key", [
    ({"issuers": []}, "issuers"),
    ({"issuers": "x"}, "issuers"),
    ({"listen": []}, "listen"),
    ({"path_prefix": "ocsp"}, "path_prefix"),
    ({"workers": 0}, "workers"),
    ({"workers": "2"}, "workers"),
    ({"event_loop": "trio"}, "event_loop"),
    ({"response_validity": "30s"}, "response_validity"),
    ({"response_validity": "1h", "refresh_margin": "2h"}, "refresh_margin"),
    ({"this_update_backdate": "1d"}, "this_update_backdate"),
    ({"nonce_policy": "always"}, "nonce_policy"),
    ({"unknown_serial_policy": "good"}, "unknown_serial_policy"),
    ({"responder_id": "key"}, "responder_id"),
    ({"presign_hash_algorithms": ["md5"]}, "presign_hash_algorithms"),
    ({"reload_interval": 0}, "reload_interval"),
    ({"limits": {"max_body_bytes": 10}}, "limits.max_body_bytes"),
    ({"limits": {"header_timeout": 0}}, "limits.header_timeout"),
    ({"limits": {"send_timeout": "500ms"}}, "limits.send_timeout"),
    ({"limits": {"bogus": 1}}, "limits.bogus"),
    ({"limits": []}, "limits"),
    ({"metrics": {"path": "/healthz"}}, "metrics.path"),
    ({"metrics": {"listen": "x"}}, "metrics.listen"),
    ({"log": {"format": "xml"}}, "log.format"),
    ({"log": {"level": "verbose"}}, "log.level"),
    ({"colour": "blue"}, "colour"),
])
def test_errors_name_the_key(files, change, key):
    with pytest.raises(ConfigError) as error:
        config_from_dict(minimal(files, **change))
    assert str(error.value).startswith(key + ":"), str(error.value)


@pytest.mark.parametrize("change,key", [
    ({"ca_cert": "/nonexistent"}, "issuers[0].ca_cert"),
    ({"index": None}, "issuers[0].index"),
    ({"index": "/nonexistent-dir/index.txt"}, "issuers[0].index"),
    ({"signer_key": None}, "issuers[0].signer_key"),
    ({"signer_cert": None}, "issuers[0].signer_cert"),
    ({"signer_key_passphrase_file": "/nonexistent"}, "issuers[0].signer_key_passphrase_file"),
    ({"ca_key": "KEY"}, "issuers[0].ca_key"),
    ({"typo": 1}, "issuers[0].typo"),
])
def test_issuer_errors_name_the_key(files, change, key):
    issuer = dict(minimal(files)["issuers"][0])
    for name, value in change.items():
        value = str(files / "signer.key") if value == "KEY" else value
        if value is None:
            issuer.pop(name)
        else:
            issuer[name] = value
    with pytest.raises(ConfigError) as error:
        config_from_dict(minimal(files, issuers=[issuer]))
    assert str(error.value).startswith(key + ":"), str(error.value)


def test_ca_key_instead_of_delegated_signer(files):
    issuer = {"ca_cert": str(files / "ca.pem"), "index": str(files / "index.txt"), "ca_key": str(files / "signer.key"),
              "ca_key_passphrase_file": str(files / "pass")}
    config = config_from_dict(minimal(files, issuers=[issuer]))
    assert not config.issuers[0].delegated
    assert config.issuers[0].signer_key_passphrase_file == str(files / "pass")


def test_duplicate_issuer_names(files):
    issuer = minimal(files)["issuers"][0]
    with pytest.raises(ConfigError, match=r"^issuers\[1\].name: duplicate"):
        config_from_dict(minimal(files, issuers=[issuer, issuer]))


def test_load_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="^config: cannot read"):
        load_config(str(tmp_path / "missing.yml"))
    (tmp_path / "bad.yml").write_text("listen: [\n")
    with pytest.raises(ConfigError, match="^config: invalid YAML"):
        load_config(str(tmp_path / "bad.yml"))
    (tmp_path / "list.yml").write_text("- a\n")
    with pytest.raises(ConfigError, match="^config: expected a mapping"):
        load_config(str(tmp_path / "list.yml"))


@pytest.mark.parametrize("change,message", [
    ({"listen": ["127.0.0.1:2560", "[::1]:2560", "127.0.0.1:2560"]},
     r"^listen\[2\]: 127\.0\.0\.1:2560 is already used by listen\[0\]$"),
    ({"metrics": {"listen": "[::1]:2560"}}, r"^metrics\.listen: \[::1\]:2560 is already used by listen\[1\]$"),
    ({"listen": ["0.0.0.0:2560"], "metrics": {"listen": "127.0.0.1:2560"}},
     r"^metrics\.listen: 127\.0\.0\.1:2560 is already used by listen\[0\] \(0\.0\.0\.0:2560\)$"),
    ({"listen": ["[::1]:2560", "[::]:2560"]}, r"^listen\[1\]: \[::\]:2560 is already used by listen\[0\]"),
    ({"workers": 2, "listen": ["127.0.0.1:2560", "127.0.0.1:0"]}, r"^listen\[1\]: port 0 \(any free port\) needs workers: 1"),
    ({"workers": 2, "metrics": {"listen": "127.0.0.1:0"}}, r"^metrics\.listen: port 0 \(any free port\) needs workers: 1"),
])
def test_bind_address_conflicts(files, change, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(minimal(files, **change))


@pytest.mark.parametrize("change", [
    {"listen": ["127.0.0.1:0", "127.0.0.1:0"]},                                 # two free ports
    {"listen": ["127.0.0.1:0"], "metrics": {"listen": "127.0.0.1:0"}},
    {"metrics": {"enabled": False, "listen": "127.0.0.1:2560"}},               # not bound
    {"listen": ["[::]:2560"], "metrics": {"listen": "127.0.0.1:2560"}},         # IPv6 sockets are V6ONLY
    {"workers": 2, "listen": ["127.0.0.1:2560", "127.0.0.2:2560"], "metrics": {"listen": "127.0.0.1:9100"}},
])
def test_bind_addresses_accepted(files, change):
    config = config_from_dict(minimal(files, **change))
    assert [key for key, _address in config.bind_addresses()][:len(config.listen)] == \
        [f"listen[{i}]" for i in range(len(config.listen))]
