"""module_utils/profiles.py: the extensions each profile gets."""
from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".cache" / "collections"))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID as EKU  # noqa: E402

from ansible_collections.pkiops.ocsp.plugins.module_utils import profiles  # noqa: E402

EC_KEY = ec.generate_private_key(ec.SECP256R1()).public_key()
RSA_KEY = rsa.generate_private_key(65537, 2048).public_key()
ISSUER_KEY = ec.generate_private_key(ec.SECP384R1()).public_key()


def extensions(profile, key=EC_KEY, **options):
    built = profiles.build_extensions(profiles.get_profile(profile), key, ISSUER_KEY,
                                      profiles.ExtensionOptions(**options))
    return {type(value): (value, critical) for value, critical in built}


def test_profile_names():
    assert set(profiles.PROFILES) == {"root_ca", "intermediate_ca", "server", "client", "server_client",
                                      "ocsp_signer"}
    assert profiles.CA_PROFILES == ("root_ca", "intermediate_ca")
    with pytest.raises(profiles.ProfileError, match="unknown profile 'email'"):
        profiles.get_profile("email")


@pytest.mark.parametrize("name", ["root_ca", "intermediate_ca"])
def test_ca_profiles(name):
    ext = extensions(name, path_length=1)
    assert ext[x509.BasicConstraints] == (x509.BasicConstraints(ca=True, path_length=1), True)
    usage, critical = ext[x509.KeyUsage]
    assert critical and usage.key_cert_sign and usage.crl_sign and usage.digital_signature
    assert not usage.key_encipherment
    assert x509.ExtendedKeyUsage not in ext
    assert ext[x509.SubjectKeyIdentifier][0] == x509.SubjectKeyIdentifier.from_public_key(EC_KEY)
    assert ext[x509.AuthorityKeyIdentifier][0] == x509.AuthorityKeyIdentifier.from_issuer_public_key(ISSUER_KEY)


@pytest.mark.parametrize("name,ekus", [
    ("server", [EKU.SERVER_AUTH]), ("client", [EKU.CLIENT_AUTH]),
    ("server_client", [EKU.SERVER_AUTH, EKU.CLIENT_AUTH]),
])
def test_leaf_profiles(name, ekus):
    ext = extensions(name, key=RSA_KEY)
    assert ext[x509.BasicConstraints] == (x509.BasicConstraints(ca=False, path_length=None), True)
    usage, critical = ext[x509.KeyUsage]
    assert critical and usage.digital_signature and usage.key_encipherment and not usage.key_cert_sign
    assert ext[x509.ExtendedKeyUsage] == (x509.ExtendedKeyUsage(ekus), False)
    # keyEncipherment is an RSA-only usage
    assert not extensions(name, key=EC_KEY)[x509.KeyUsage][0].key_encipherment


def test_ocsp_signer_profile():
    ext = extensions("ocsp_signer", key=RSA_KEY)
    usage, critical = ext[x509.KeyUsage]
    assert critical and usage.digital_signature
    assert not (usage.key_encipherment or usage.key_cert_sign or usage.crl_sign or usage.content_commitment)
    assert ext[x509.ExtendedKeyUsage] == (x509.ExtendedKeyUsage([EKU.OCSP_SIGNING]), True)
    assert ext[x509.OCSPNoCheck] == (x509.OCSPNoCheck(), False)
    assert profiles.get_profile("ocsp_signer").valid_days == 30
    assert profiles.get_profile("ocsp_signer").renew_before_days == 10


def test_urls_and_sans():
    ext = extensions("server", ocsp_url=["http://o1", "http://o2"], ca_issuers_url="http://i",
                     crl_url="http://c", subject_alt_name=["DNS:a.example", "IP:192.0.2.1", "email:x@y",
                                                           "URI:https://u", "ip:2001:db8::1"])
    aia = ext[x509.AuthorityInformationAccess][0]
    assert [d.access_location.value for d in aia] == ["http://o1", "http://o2", "http://i"]
    cdp = ext[x509.CRLDistributionPoints][0]
    assert cdp[0].full_name[0].value == "http://c"
    san = ext[x509.SubjectAlternativeName][0]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.0.2.1"),
                                                       ipaddress.ip_address("2001:db8::1")]
    assert profiles.general_names_to_strings(san) == [
        "DNS:a.example", "IP:192.0.2.1", "email:x@y", "URI:https://u", "IP:2001:db8::1"]


@pytest.mark.parametrize("name,options,message", [
    ("server", {"path_length": 0}, "path_length only applies to CA profiles"),
    ("intermediate_ca", {"path_length": -1}, "0 or more"),
    ("root_ca", {"ocsp_url": ["http://o"]}, "do not apply to root_ca"),
    ("root_ca", {"crl_url": "http://c"}, "does not apply to root_ca"),
    ("server", {"subject_alt_name": ["a.example.com"]}, "not TYPE:value"),
    ("server", {"subject_alt_name": ["DNS:"]}, "not TYPE:value"),
    ("server", {"subject_alt_name": ["IP:300.1.1.1"]}, "not an IP address"),
    ("server", {"subject_alt_name": ["RID:1.2.3"]}, "type must be DNS, IP, email or URI"),
])
def test_bad_options(name, options, message):
    with pytest.raises(profiles.ProfileError, match=message):
        extensions(name, **options)


@pytest.mark.parametrize("options,message", [
    ({"subject_alt_name": ["DNS:bücher.example"]},
     "subject_alt_name entry 'DNS:bücher.example' contains non-ASCII .* DNS:xn--bcher-kva.example"),
    ({"subject_alt_name": ["email:info@bücher.example"]}, "email:info@xn--bcher-kva.example"),
    ({"subject_alt_name": ["email:jörg@example.com"]}, "percent-encode or remove the other non-ASCII"),
    ({"subject_alt_name": ["URI:https://user@bücher.example:8443/a?b"]},
     "URI:https://user@xn--bcher-kva.example:8443/a[?]b"),
    ({"ocsp_url": ["http://ocsp.bücher.example"]},
     "ocsp_url 'http://ocsp.bücher.example' .* URI:http://ocsp.xn--bcher-kva.example"),
    ({"ca_issuers_url": "http://bücher.example/ca.cer"}, "ca_issuers_url .* A-label"),
    ({"crl_url": "http://bücher.example/ca.crl"}, "crl_url .* A-label"),
])
def test_internationalised_names_ask_for_the_a_label_form(options, message):
    with pytest.raises(profiles.ProfileError, match=message):
        extensions("server", **options)
