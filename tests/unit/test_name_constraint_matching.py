"""RFC 5280 4.2.1.10 matching (module_utils/name_constraints.py), case by case; the
integration tests check the same decisions against `openssl verify`."""
from __future__ import annotations

import datetime
import ipaddress
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".cache" / "collections"))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from ansible_collections.pkiops.ocsp.plugins.module_utils.name_constraints import (  # noqa: E402
    DirectoryName, NameConstraintError, NameConstraints, certificate_names, check, match_dirname, match_dns,
    match_email, match_ip, match_uri, uri_host)
from ansible_collections.pkiops.ocsp.plugins.module_utils.certs import CertificateError  # noqa: E402


@pytest.mark.parametrize("name, base, inside", [
    ("example.com", "example.com", True),
    ("www.example.com", "example.com", True),
    ("a.b.EXAMPLE.com", "Example.COM", True),
    ("badexample.com", "example.com", False),  # a suffix, but not on a label boundary
    ("example.com", ".example.com", False),  # a leading dot: only names below it
    ("www.example.com", ".example.com", True),
    ("example.org", "example.com", False),
    ("com", "example.com", False),
    ("anything.at.all", "", True),  # an empty constraint matches every name
])
def test_dns(name, base, inside):
    assert match_dns(name, base) is inside


@pytest.mark.parametrize("address, base, inside", [
    ("boss@example.com", "boss@example.com", True),
    ("Boss@example.com", "boss@example.com", False),  # the local part is case-sensitive
    ("boss@EXAMPLE.com", "boss@example.com", True),  # the host is not
    ("x@example.com", "example.com", True),  # a host: every address at it
    ("x@mail.example.com", "example.com", False),  # ... but not below it
    ("x@mail.example.com", ".example.com", True),  # a domain: addresses at hosts below it
    ("x@example.com", ".example.com", False),
    ("x@example.org", "example.com", False),
])
def test_email(address, base, inside):
    assert match_email(address, base) is inside


def test_email_without_at_cannot_be_checked():
    with pytest.raises(NameConstraintError, match='has no "@"'):
        match_email("postmaster", "example.com")


@pytest.mark.parametrize("address, network, inside", [
    ("192.0.2.5", "192.0.2.0/255.255.255.0", True),
    ("192.0.3.5", "192.0.2.0/255.255.255.0", False),
    ("10.9.9.9", "10.0.0.0/8", True),
    ("192.0.2.5", "0.0.0.0/0", True),
    ("2001:db8::1", "2001:db8::/32", True),
    ("2001:db9::1", "2001:db8::/32", False),
    ("::ffff:192.0.2.5", "192.0.2.0/24", False),  # IPv6 never matches an IPv4 constraint
    ("192.0.2.5", "::/0", False),  # nor IPv4 an IPv6 one, not even ::/0
])
def test_ip(address, network, inside):
    assert match_ip(ipaddress.ip_address(address), ipaddress.ip_network(network)) is inside


@pytest.mark.parametrize("uri, base, inside", [
    ("https://www.example.com/x", "www.example.com", True),
    ("https://www.example.com:8443/x", "www.example.com", True),
    ("https://WWW.example.com", "www.example.com", True),
    ("https://www.example.com/", ".example.com", True),
    ("https://example.com/", ".example.com", False),
    ("https://example.com/", "example.com", True),
    ("https://www.example.com/", "example.com", False),  # a host constraint is that host only
])
def test_uri(uri, base, inside):
    assert match_uri(uri, base) is inside


@pytest.mark.parametrize("uri, message", [
    ("urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", "no //host part"),
    ("mailto:x@example.com", "no //host part"),
    ("https://user@www.example.com/", "read differently"),  # OpenSSL takes "user@www.example.com"
    ("https://[2001:db8::1]/", "read differently"),
    ("file:///etc/passwd", "empty host"),
    ("https://www.example.com/a:b", "read differently"),  # OpenSSL: up to the first ':', "www.example.com/a"
    ("https://www.example.com/?q=a:b", "read differently"),
])
def test_uri_without_a_clear_host_cannot_be_checked(uri, message):
    with pytest.raises(NameConstraintError, match=message):
        uri_host(uri)


def name(*rdns):
    rdn_list = [x509.RelativeDistinguishedName([x509.NameAttribute(oid, value) for oid, value in rdn])
                for rdn in rdns]
    return DirectoryName(x509.Name(rdn_list))


C_GB = [(NameOID.COUNTRY_NAME, "GB")]
O_ALICE = [(NameOID.ORGANIZATION_NAME, "Alice Ltd")]


def test_directory_name_is_an_rdn_prefix_compared_like_openssl():
    base = name(C_GB, O_ALICE)
    assert match_dirname(name(C_GB, O_ALICE, [(NameOID.COMMON_NAME, "x")]), base)
    assert match_dirname(name(C_GB, O_ALICE), base)
    assert match_dirname(name(C_GB, [(NameOID.ORGANIZATION_NAME, "  ALICE   ltd ")]), base)  # case, spaces
    assert not match_dirname(name(C_GB), base)
    assert not match_dirname(name(O_ALICE, C_GB), base)  # order matters
    assert not match_dirname(name(C_GB, [(NameOID.ORGANIZATIONAL_UNIT_NAME, "x")], O_ALICE), base)
    assert not match_dirname(name(C_GB, [(NameOID.ORGANIZATION_NAME, "Alice Ltd.")]), base)
    # a multi-valued RDN matches whatever the order of its members
    multi = name(C_GB + O_ALICE)
    assert match_dirname(name([O_ALICE[0], C_GB[0]], [(NameOID.COMMON_NAME, "x")]), multi)
    assert str(name(C_GB, O_ALICE, [(NameOID.COMMON_NAME, "x")])) == "/C=GB/O=Alice Ltd/CN=x"
    assert str(multi) == "/C=GB+O=Alice Ltd"
    # attribute types by OID: the same value under another type is another name
    assert not match_dirname(name(C_GB, [(NameOID.ORGANIZATIONAL_UNIT_NAME, "Alice Ltd")]), base)


def ca_with(constraints):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "NC CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
               .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True))
    if constraints is not None:
        builder = builder.add_extension(constraints, critical=True)
    return builder.sign(key, hashes.SHA256())


def names_of(subject_attributes, sans, end_entity=True):
    subject = x509.Name([x509.NameAttribute(oid, value) for oid, value in subject_attributes])
    return certificate_names(subject, sans, end_entity)


def test_constraints_read_from_the_certificate():
    assert NameConstraints.of_certificate(ca_with(None), "the issuer") is None
    cert = ca_with(x509.NameConstraints(
        permitted_subtrees=[x509.DNSName("example.com"), x509.IPAddress(ipaddress.ip_network("192.0.2.0/24")),
                            x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "GB")]))],
        excluded_subtrees=[x509.RFC822Name("boss@example.com")]))
    constraints = NameConstraints.of_certificate(cert, "the issuer /CN=NC CA")
    assert [str(s) for s in constraints.permitted] == ["DNS:example.com", "IP:192.0.2.0/255.255.255.0", "dirName:/C=GB"]
    assert [str(s) for s in constraints.excluded] == ["email:boss@example.com"]
    check(names_of([(NameOID.COUNTRY_NAME, "GB"), (NameOID.COMMON_NAME, "x")],
                   [x509.DNSName("www.example.com"), x509.IPAddress(ipaddress.ip_address("192.0.2.1"))]), [constraints])
    with pytest.raises(NameConstraintError, match=r"subject /C=FR/CN=x is outside the permitted subtrees of the "
                                                  r"issuer /CN=NC CA \(permitted: dirName:/C=GB\)"):
        check(names_of([(NameOID.COUNTRY_NAME, "FR"), (NameOID.COMMON_NAME, "x")], []), [constraints])
    with pytest.raises(NameConstraintError, match="subject emailAddress boss@example.com is inside the excluded"):
        check(names_of([(NameOID.COUNTRY_NAME, "GB"), (NameOID.EMAIL_ADDRESS, "boss@example.com")], []),
              [constraints])


def test_common_name_counts_as_dns_only_for_end_entities_without_dns_names():
    constraints = NameConstraints.of_certificate(
        ca_with(x509.NameConstraints(permitted_subtrees=[x509.DNSName("example.com")], excluded_subtrees=None)),
        "the issuer")
    host_cn = [(NameOID.COMMON_NAME, "www.example.org")]
    with pytest.raises(NameConstraintError, match=r"subject CN=www.example.org \(checked as a DNS name"):
        check(names_of(host_cn, []), [constraints])
    check(names_of(host_cn, [x509.DNSName("www.example.com")]), [constraints])  # the SAN is what counts then
    check(names_of(host_cn, [], end_entity=False), [constraints])  # a CA's CN is no host name
    for not_a_host in ("Alice Ltd OCSP", "localhost", "-a.example.org", "a..example.org", "*.example.org"):
        check(names_of([(NameOID.COMMON_NAME, not_a_host)], []), [constraints])


def test_names_of_a_type_without_constraints_are_not_restricted():
    constraints = NameConstraints.of_certificate(
        ca_with(x509.NameConstraints(permitted_subtrees=[x509.DNSName("example.com")], excluded_subtrees=None)),
        "the issuer")
    sans = [x509.IPAddress(ipaddress.ip_address("198.51.100.1")), x509.RFC822Name("x@example.org")]
    check(names_of([(NameOID.COMMON_NAME, "x")], sans), [constraints])


def test_constrained_types_that_cannot_be_checked_are_refused():
    constraints = NameConstraints.of_certificate(ca_with(x509.NameConstraints(
        permitted_subtrees=[x509.OtherName(x509.ObjectIdentifier("1.3.6.1.5.5.7.8.9"), b"\x0c\x01x")],
        excluded_subtrees=None)), "the issuer")
    other = x509.OtherName(x509.ObjectIdentifier("1.3.6.1.5.5.7.8.9"), b"\x0c\x01y")
    with pytest.raises(NameConstraintError, match="names of type otherName are constrained .* cannot check them"):
        check(names_of([(NameOID.COMMON_NAME, "x")], [other]), [constraints])
    check(names_of([(NameOID.COMMON_NAME, "x")], [x509.DNSName("www.example.org")]), [constraints])


def test_an_extension_cryptography_cannot_parse_is_a_clear_error():
    """An IP constraint with host bits set (OpenSSL accepts it): cryptography refuses to parse the
    extension, and the error names the certificate instead of a traceback."""
    der = bytes.fromhex("300e a00c 300a 8708 c0000201ffffff00")  # permitted;IP:192.0.2.1/255.255.255.0
    cert = ca_with(x509.UnrecognizedExtension(x509.ObjectIdentifier("2.5.29.30"), der))
    with pytest.raises(CertificateError, match=r"cannot read the extensions of the certificate /CN=NC CA: .*host bits"):
        NameConstraints.of_certificate(cert, "the issuer")
