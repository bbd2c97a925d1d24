# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RFC 5280 4.2.1.10 name constraints, checked before a certificate is issued.

A CA certificate's nameConstraints bind every certificate below it. OpenSSL (like other
verifiers) enforces those of every CA in the chain, the trust anchor's included, so a
certificate outside them would be issued, recorded and delivered, and then fail
``openssl verify`` ("permitted subtree violation" / "excluded subtree violation").

Everything is read through cryptography: the extension as ``x509.NameConstraints`` (its
subtrees as GeneralName objects), the subject as ``x509.Name``, the subjectAltName entries as
GeneralName objects. What cryptography does not show is not checked:

- a subtree's minimum/maximum (RFC 5280: minimum MUST be 0, maximum absent; OpenSSL rejects
  every name checked against a subtree carrying them, and no CA tool writes them);
- the string type of the subject's emailAddress (OpenSSL rejects one that is no IA5String);
- an extension cryptography cannot parse (an IP constraint with host bits set or a
  non-contiguous mask, which OpenSSL accepts) makes the CA unreadable: the task fails with
  "cannot read the extensions of the certificate ..." (certs.extension_or_none).

The semantics follow RFC 5280 as OpenSSL 3 implements them (crypto/x509/v3_ncons.c):

- a name is checked against the subtrees of its own type only; if there are permitted
  subtrees of its type, one must match; no excluded subtree of its type may match;
- DNS: a suffix on a label boundary ("example.com" matches example.com and
  www.example.com, ".example.com" only the names below it), case-insensitive;
- rfc822 (email SANs and the subject's emailAddress attributes): a full address (local part
  case-sensitive), a host ("example.com": addresses at that host), or a domain
  (".example.com": addresses at hosts below it);
- IP: the address lies in the constraint's network; IPv4 names only match IPv4
  constraints, IPv6 only IPv6;
- URI: the host part of the URI, as a host ("www.example.com") or a domain (".example.com");
- directoryName: the subject's first RDNs equal the constraint's RDNs, attribute types by
  OID, values as OpenSSL compares them (ASCII case and white space folded);
- an end entity without DNS subjectAltName: a commonName that looks like a host name
  (two or more labels) is checked as a DNS name, as OpenSSL does.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from urllib.parse import urlsplit

from ansible_collections.pkiops.ocsp.plugins.module_utils.certs import extension_or_none, name_to_string

try:
    from cryptography import x509
    from cryptography.x509.oid import NameOID
except ImportError:  # pragma: no cover - reported by the modules via missing_required_lib
    pass

# the kinds of GeneralName, by cryptography class, as OpenSSL's configuration names them
_KINDS = {'DNSName': 'DNS', 'RFC822Name': 'email', 'IPAddress': 'IP', 'UniformResourceIdentifier': 'URI',
          'DirectoryName': 'dirName', 'OtherName': 'otherName', 'RegisteredID': 'RID'}
SUPPORTED_KINDS = ('DNS', 'email', 'IP', 'URI', 'dirName')

_ASCII_SPACE = ' \t\n\v\f\r'
_ASCII_SPACE_RUN = re.compile('[%s]+' % _ASCII_SPACE)


class NameConstraintError(Exception):
    """The certificate would violate a CA's name constraints, or they cannot be checked."""


# ---- names and subtrees ------------------------------------------------------------------

def _lower(text):
    return ''.join(char.lower() if char < '\x80' else char for char in text)


def _canonical(value):
    """OpenSSL's canonical form of an attribute value (x_name.c asn1_string_canon): ASCII white
    space trimmed and its runs made one space, ASCII letters lower-cased."""
    if not isinstance(value, str):
        return value  # a BIT STRING (x500UniqueIdentifier): compared as it is
    return _lower(_ASCII_SPACE_RUN.sub(' ', value.strip(_ASCII_SPACE)))


class DirectoryName:
    """An x509.Name as OpenSSL compares names: each RDN the set of its (OID, canonical value)."""

    def __init__(self, name):
        self.name = name
        self.rdns = [frozenset((attribute.oid, _canonical(attribute.value)) for attribute in rdn)
                     for rdn in name.rdns]

    def __str__(self):
        return '/' + '/'.join('+'.join(name_to_string([attribute])[1:] for attribute in rdn)
                              for rdn in self.name.rdns)


def _kind_and_value(general_name):
    """('DNS', 'email', 'IP', 'URI', 'dirName' or an unsupported kind, the value to match)."""
    kind = _KINDS.get(type(general_name).__name__, type(general_name).__name__)
    value = general_name.value
    return kind, DirectoryName(value) if kind == 'dirName' else value


class Subtree:
    """One GeneralSubtree of a CA's nameConstraints (its base; cryptography shows no more)."""

    def __init__(self, general_name):
        self.kind, self.value = _kind_and_value(general_name)

    def __str__(self):
        if self.kind == 'IP':
            return 'IP:%s/%s' % (self.value.network_address, self.value.netmask)
        return '%s:%s' % (self.kind, self.value) if self.kind in SUPPORTED_KINDS else self.kind


class NameConstraints:
    """The permitted and excluded subtrees of one CA certificate."""

    def __init__(self, constraints, ca_label):
        self.ca_label = ca_label
        self.permitted = [Subtree(name) for name in constraints.permitted_subtrees or ()]
        self.excluded = [Subtree(name) for name in constraints.excluded_subtrees or ()]

    @classmethod
    def of_certificate(cls, cert, ca_label):
        """The certificate's constraints, None without the extension (CertificateError when
        cryptography cannot parse its extensions)."""
        extension = extension_or_none(cert, x509.NameConstraints)
        return None if extension is None else cls(extension.value, ca_label)


# ---- matching (each returns True when the name is inside the subtree) -------------------------

def match_dns(name, base):
    if base == '':
        return True
    name, base = _lower(name), _lower(base)
    if len(name) < len(base):
        return False
    if len(name) > len(base) and not base.startswith('.') and name[len(name) - len(base) - 1] != '.':
        return False
    return name.endswith(base)


def match_email(address, base):
    if '@' not in address:
        raise NameConstraintError('has no "@"')
    local, _at, host = address.rpartition('@')
    if '@' not in base and base.startswith('.'):
        return len(address) > len(base) and _lower(address).endswith(_lower(base))
    if '@' in base:
        base_local, _at, base_host = base.rpartition('@')
        if base_local and base_local != local:  # the local part is case-sensitive
            return False
    else:
        base_host = base
    return _lower(host) == _lower(base_host)


def match_ip(address, network):
    """An ipaddress address against an ipaddress network, IPv4 and IPv6 apart."""
    return address.version == network.version and address in network


def uri_host(uri):
    """The host a URI constraint applies to; NameConstraintError when verifiers would read it
    differently (OpenSSL takes what follows "//" up to ":" or "/") or it has none."""
    scheme, sep, rest = uri.partition(':')
    if not sep or not scheme or not rest.startswith('//'):
        raise NameConstraintError('has no //host part, which URI constraints apply to')
    authority = rest[2:]
    # OpenSSL (v3_ncons.c nc_uri): up to the first ':' anywhere after "//", else up to '/'
    colon = authority.find(':')
    openssl_host = authority[:colon] if colon >= 0 else authority.split('/', 1)[0]
    try:
        host = urlsplit(uri).hostname or ''
    except ValueError:
        host = ''
    if not openssl_host:
        raise NameConstraintError('has an empty host')
    if _lower(host) != _lower(openssl_host):
        raise NameConstraintError('has a host part that verifiers read differently (%r or %r); write it as '
                                  'scheme://host[:port]/path' % (host, openssl_host))
    return openssl_host


def match_uri(uri, base):
    host = uri_host(uri)
    if base.startswith('.'):
        return len(host) > len(base) and _lower(host).endswith(_lower(base))
    return _lower(host) == _lower(base)


def match_dirname(name, base):
    if len(base.rdns) > len(name.rdns):
        return False
    return all(mine == theirs for mine, theirs in zip(name.rdns, base.rdns))


_MATCHERS = {'DNS': match_dns, 'email': match_email, 'IP': match_ip, 'URI': match_uri, 'dirName': match_dirname}


# ---- the names of a certificate and the check --------------------------------------------------

class CheckedName:
    """A name of the certificate to be issued: kind, value, and how to show it."""

    def __init__(self, kind, value, label):
        self.kind = kind
        self.value = value
        self.label = label


def _looks_like_host(text):
    """OpenSSL's cn2dnsid: letters, digits, '_', internal '-' and '.', two labels or more."""
    is_host = False
    for index, char in enumerate(text):
        if char.isascii() and (char.isalnum() or char == '_'):
            continue
        if 0 < index < len(text) - 1:
            if char == '-':
                continue
            if char == '.' and text[index + 1] != '.' and text[index - 1] != '-' and text[index + 1] != '-':
                is_host = True
                continue
        return False
    return is_host


def _text_values(name, oid):
    return [attribute.value for attribute in name.get_attributes_for_oid(oid) if isinstance(attribute.value, str)]


def _general_name(general_name):
    kind, value = _kind_and_value(general_name)
    if kind not in SUPPORTED_KINDS:
        return CheckedName(kind, None, '%s:%r' % (type(general_name).__name__, value))
    return CheckedName(kind, value, '%s:%s' % (kind, value))


def certificate_names(subject, general_names, end_entity):
    """The names constraints apply to: the subject (an x509.Name) as a directoryName, its
    emailAddress attributes as rfc822 names, the subjectAltName entries (GeneralName objects),
    and for an end entity without DNS names a host-like commonName."""
    names = []
    if subject.rdns:
        directory = DirectoryName(subject)
        names.append(CheckedName('dirName', directory, 'subject %s' % directory))
    for address in _text_values(subject, NameOID.EMAIL_ADDRESS):
        names.append(CheckedName('email', address, 'subject emailAddress %s' % address))
    names.extend(_general_name(general_name) for general_name in general_names)
    if end_entity and not any(name.kind == 'DNS' for name in names):
        for common_name in _text_values(subject, NameOID.COMMON_NAME):
            if _looks_like_host(common_name):
                names.append(CheckedName('DNS', common_name, 'subject CN=%s (checked as a DNS name: the '
                                         'certificate has no DNS subjectAltName)' % common_name))
    return names


def check(names, constraints):
    """Raise NameConstraintError for the first name a CA's constraints do not allow.

    ``constraints``: NameConstraints of every CA in the issuer's chain.
    """
    for nc in constraints:
        for name in names:
            _check_one(name, nc)


def _check_one(name, nc):
    matcher = _MATCHERS.get(name.kind)
    permitted = [subtree for subtree in nc.permitted if subtree.kind == name.kind]
    excluded = [subtree for subtree in nc.excluded if subtree.kind == name.kind]
    if not permitted and not excluded:
        return
    if matcher is None:
        raise NameConstraintError('%s: names of type %s are constrained by the nameConstraints of %s and this '
                                  'module cannot check them; nothing was issued'
                                  % (name.label, name.kind, nc.ca_label))

    def inside(subtree):
        try:
            return matcher(name.value, subtree.value)
        except NameConstraintError as exc:
            raise NameConstraintError('%s %s, so the nameConstraints of %s (%s) cannot be applied to it; '
                                      'nothing was issued' % (name.label, exc, nc.ca_label, subtree))

    if permitted and not any(inside(subtree) for subtree in permitted):
        raise NameConstraintError('name constraints: %s is outside the permitted subtrees of %s (permitted: %s); '
                                  'the certificate would fail verification ("permitted subtree violation"); '
                                  'nothing was issued'
                                  % (name.label, nc.ca_label, ', '.join(str(subtree) for subtree in permitted)))
    for subtree in excluded:
        if inside(subtree):
            raise NameConstraintError('name constraints: %s is inside the excluded subtree %s of %s; the '
                                      'certificate would fail verification ("excluded subtree violation"); '
                                      'nothing was issued' % (name.label, subtree, nc.ca_label))
