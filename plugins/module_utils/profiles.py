# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificate profiles: the extensions each kind of certificate carries.

Extensions always come from the profile and the module options, never from a CSR, so a
CSR cannot smuggle CA:TRUE, extra key usages or anything else into a certificate.
The sets follow the OpenSSL CA guide's openssl.cnf sections (v3_ca, v3_intermediate_ca,
usr_cert, server_cert, ocsp) and RFC 5280 / RFC 6960.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    from cryptography import x509
    from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID
except ImportError:  # pragma: no cover - reported by the modules via missing_required_lib
    pass


class ProfileError(Exception):
    pass


class Profile:
    def __init__(self, name, is_ca, key_usage, extended_key_usage=(), eku_critical=False,
                 ocsp_no_check=False, valid_days=375, renew_before_days=30, self_signed=False):
        self.name = name
        self.is_ca = is_ca
        self.key_usage = frozenset(key_usage)
        self.extended_key_usage = tuple(extended_key_usage)
        self.eku_critical = eku_critical
        self.ocsp_no_check = ocsp_no_check
        self.valid_days = valid_days
        self.renew_before_days = renew_before_days
        self.self_signed = self_signed

    def __repr__(self):
        return 'Profile(%s)' % self.name


_KEY_USAGE_FIELDS = ('digital_signature', 'content_commitment', 'key_encipherment',
                     'data_encipherment', 'key_agreement', 'key_cert_sign', 'crl_sign',
                     'encipher_only', 'decipher_only')

# Validity defaults are the guide's: 7300 days root, 3650 intermediate, 375 end entity.
# The OCSP signer is short-lived on purpose: it carries id-pkix-ocsp-nocheck, so a
# compromised signer can only be contained by expiry.
PROFILES = dict((p.name, p) for p in (
    Profile('root_ca', True, ('digital_signature', 'key_cert_sign', 'crl_sign'),
            valid_days=7300, renew_before_days=365, self_signed=True),
    Profile('intermediate_ca', True, ('digital_signature', 'key_cert_sign', 'crl_sign'),
            valid_days=3650, renew_before_days=180),
    Profile('server', False, ('digital_signature', 'key_encipherment'), ('server_auth',)),
    Profile('client', False, ('digital_signature', 'key_encipherment'), ('client_auth',)),
    Profile('server_client', False, ('digital_signature', 'key_encipherment'),
            ('server_auth', 'client_auth')),
    Profile('ocsp_signer', False, ('digital_signature',), ('ocsp_signing',), eku_critical=True,
            ocsp_no_check=True, valid_days=30, renew_before_days=10),
))

CA_PROFILES = tuple(name for name, p in PROFILES.items() if p.is_ca)
LEAF_PROFILES = tuple(name for name, p in PROFILES.items() if not p.is_ca)


def get_profile(name):
    try:
        return PROFILES[name]
    except KeyError:
        raise ProfileError('unknown profile %r; one of %s' % (name, ', '.join(sorted(PROFILES))))


def _eku_oid(name):
    return {
        'server_auth': ExtendedKeyUsageOID.SERVER_AUTH,
        'client_auth': ExtendedKeyUsageOID.CLIENT_AUTH,
        'ocsp_signing': ExtendedKeyUsageOID.OCSP_SIGNING,
    }[name]


def _key_usage(profile, public_key):
    usages = set(profile.key_usage)
    # Ed25519/ECDSA keys cannot encipher keys; RSA TLS key exchange needs it (guide's usr_cert).
    if 'key_encipherment' in usages and not _is_rsa(public_key):
        usages.discard('key_encipherment')
    return x509.KeyUsage(**dict((field, field in usages) for field in _KEY_USAGE_FIELDS))


def _is_rsa(public_key):
    from cryptography.hazmat.primitives.asymmetric import rsa
    return isinstance(public_key, rsa.RSAPublicKey)


class ExtensionOptions:
    """The extension-related module options, validated."""

    def __init__(self, subject_alt_name=None, ocsp_url=None, ca_issuers_url=None, crl_url=None,
                 path_length=None):
        self.subject_alt_name = list(subject_alt_name or [])
        self.ocsp_url = list(ocsp_url or [])
        self.ca_issuers_url = ca_issuers_url
        self.crl_url = crl_url
        self.path_length = path_length


def build_extensions(profile, public_key, issuer_public_key, options, issuer_key_identifier=None):
    """[(extension value, critical)] in a stable order for `profile`.

    issuer_public_key is the subject's own key for a self-signed root. issuer_key_identifier
    is the issuer certificate's subjectKeyIdentifier, when it has one: the authority key
    identifier must repeat it (as `openssl ca` does), whichever way the issuer computed it,
    or chain building (OpenSSL's among others) does not find the issuer.
    """
    if options.path_length is not None:
        if not profile.is_ca:
            raise ProfileError('path_length only applies to CA profiles, not %s' % profile.name)
        if options.path_length < 0:
            raise ProfileError('path_length must be 0 or more')
    extensions = [
        (x509.BasicConstraints(ca=profile.is_ca,
                               path_length=options.path_length if profile.is_ca else None), True),
        (_key_usage(profile, public_key), True),
    ]
    if profile.extended_key_usage:
        extensions.append((x509.ExtendedKeyUsage([_eku_oid(n) for n in profile.extended_key_usage]),
                           profile.eku_critical))
    extensions.append((x509.SubjectKeyIdentifier.from_public_key(public_key), False))
    if issuer_key_identifier is not None:
        authority = x509.AuthorityKeyIdentifier(key_identifier=issuer_key_identifier, authority_cert_issuer=None,
                                                authority_cert_serial_number=None)
    else:
        authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key)
    extensions.append((authority, False))
    if options.subject_alt_name:
        extensions.append((x509.SubjectAlternativeName(parse_general_names(options.subject_alt_name)),
                           False))
    access = [x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                     _ia5_name('URI', url, 'ocsp_url %r' % url)) for url in options.ocsp_url]
    if options.ca_issuers_url:
        access.append(x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS,
            _ia5_name('URI', options.ca_issuers_url, 'ca_issuers_url %r' % options.ca_issuers_url)))
    if access:
        if profile.self_signed:
            raise ProfileError('a root CA has no issuer to point at: ocsp_url and ca_issuers_url '
                               'do not apply to root_ca')
        extensions.append((x509.AuthorityInformationAccess(access), False))
    if options.crl_url:
        if profile.self_signed:
            raise ProfileError('crl_url does not apply to root_ca (nothing revokes a root)')
        extensions.append((x509.CRLDistributionPoints([x509.DistributionPoint(
            full_name=[_ia5_name('URI', options.crl_url, 'crl_url %r' % options.crl_url)],
            relative_name=None, reasons=None, crl_issuer=None)]), False))
    if profile.ocsp_no_check:
        extensions.append((x509.OCSPNoCheck(), False))
    return extensions


_IA5_NAMES = {'DNS': 'DNSName', 'email': 'RFC822Name', 'URI': 'UniformResourceIdentifier'}


def _is_ascii(text):
    try:
        text.encode('ascii')
        return True
    except UnicodeEncodeError:
        return False


def _a_label(domain):
    try:
        return domain.encode('idna').decode('ascii')
    except UnicodeError:
        return None


def _a_label_form(kind, value):
    """``value`` with its domain in IDNA A-label form, or None when that alone is not enough."""
    if kind == 'DNS':
        return _a_label(value)
    if kind == 'email':
        local, _at, domain = value.rpartition('@')
        domain = _a_label(domain)
        return '%s@%s' % (local, domain) if domain and _is_ascii(local) else None
    from urllib.parse import urlsplit, urlunsplit
    parts = urlsplit(value)
    userinfo, at, hostport = parts.netloc.rpartition('@')
    host, colon, port = hostport.partition(':')
    host = _a_label(host)
    if host is None:
        return None
    uri = urlunsplit(parts._replace(netloc=userinfo + at + host + colon + port))
    return uri if _is_ascii(uri) else None


def check_ia5_uri(value, what):
    """Refuse a URI a certificate cannot carry, naming ``what`` (for URLs that only reach
    openssl.cnf, which ``openssl ca`` copies into certificates unchecked)."""
    _ia5_name('URI', value, what)


def _ia5_name(kind, value, what):
    """A DNS, email or URI general name. Certificates carry these as IA5String (ASCII), and
    cryptography raises a bare ValueError for an internationalised one: say what to write."""
    if not _is_ascii(value):
        suggestion = _a_label_form(kind, value)
        raise ProfileError('%s contains non-ASCII characters, which a certificate cannot carry: write the '
                           'domain in its IDNA A-label (xn--) form%s'
                           % (what, ', %s:%s' % (kind, suggestion) if suggestion else
                              ' and percent-encode or remove the other non-ASCII characters'))
    try:
        return getattr(x509, _IA5_NAMES[kind])(value)
    except ValueError as exc:
        raise ProfileError('%s is not a valid %s name: %s' % (what, kind, exc))


def parse_general_names(entries):
    """'DNS:x', 'IP:1.2.3.4', 'email:a@b', 'URI:https://…' → GeneralName list."""
    import ipaddress
    names = []
    for entry in entries:
        kind, sep, value = str(entry).partition(':')
        value = value.strip()
        if not sep or not value:
            raise ProfileError('subject_alt_name entry %r is not TYPE:value' % (entry,))
        kind_lower = kind.strip().lower()
        if kind_lower == 'dns':
            names.append(_ia5_name('DNS', value, 'subject_alt_name entry %r' % (entry,)))
        elif kind_lower in ('ip', 'ip address'):
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(value)))
            except ValueError:
                raise ProfileError('subject_alt_name entry %r is not an IP address' % (entry,))
        elif kind_lower == 'email':
            names.append(_ia5_name('email', value, 'subject_alt_name entry %r' % (entry,)))
        elif kind_lower == 'uri':
            names.append(_ia5_name('URI', value, 'subject_alt_name entry %r' % (entry,)))
        else:
            raise ProfileError('subject_alt_name entry %r: type must be DNS, IP, email or URI' % (entry,))
    return names


def general_names_to_strings(names):
    out = []
    for name in names:
        if isinstance(name, x509.DNSName):
            out.append('DNS:%s' % name.value)
        elif isinstance(name, x509.IPAddress):
            out.append('IP:%s' % name.value)
        elif isinstance(name, x509.RFC822Name):
            out.append('email:%s' % name.value)
        elif isinstance(name, x509.UniformResourceIdentifier):
            out.append('URI:%s' % name.value)
        else:
            out.append('%s:%r' % (type(name).__name__, name.value))
    return out
