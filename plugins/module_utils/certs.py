# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificates: subjects, CSRs, the wanted certificate, comparing and signing.

Runs on target hosts: Python 3.9+, cryptography >= 38 (newer APIs are feature-tested).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import re

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
    from cryptography.x509.oid import NameOID
except ImportError:  # pragma: no cover - reported by the modules via missing_required_lib
    pass

from ansible_collections.pkiops.ocsp.plugins.module_utils.keys import (
    contains_private_key, describe_key, public_key_der)
from ansible_collections.pkiops.ocsp.plugins.module_utils.profiles import (
    build_extensions, general_names_to_strings)

# Start validity a little in the past so hosts with a slightly slow clock accept a fresh
# certificate at once (an OCSP signer rotated by a playbook is used seconds later).
BACKDATE = datetime.timedelta(minutes=5)
DIGESTS = ('sha256', 'sha384', 'sha512')


class CertificateError(Exception):
    """A certificate cannot be read, built or issued; the message is safe to show."""


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def not_before(cert):
    value = getattr(cert, 'not_valid_before_utc', None)
    return value if value is not None else cert.not_valid_before.replace(tzinfo=datetime.timezone.utc)


def not_after(cert):
    value = getattr(cert, 'not_valid_after_utc', None)
    return value if value is not None else cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def asn1_time(value):
    """The form OpenSSL prints and index.txt-like tools read: 20250102030405Z."""
    return value.astimezone(datetime.timezone.utc).strftime('%Y%m%d%H%M%SZ')


def parse_time(text):
    """not_after: ASN.1 (YYYYMMDDHHMMSSZ), ISO 8601 date or date-time (UTC if no zone).

    Fractions of a second are dropped: a certificate's time has whole seconds, so a wanted
    time with a fraction would never equal the issued one and every run would reissue.
    """
    text = str(text).strip()
    for fmt in ('%Y%m%d%H%M%SZ', '%Y-%m-%dT%H:%M:%SZ', '%Y-%m-%d %H:%M:%S', '%Y-%m-%dT%H:%M:%S',
                '%Y-%m-%d'):
        try:
            return datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            pass
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise CertificateError('cannot parse time %r: use YYYYMMDDHHMMSSZ or ISO 8601' % text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.astimezone(datetime.timezone.utc).replace(microsecond=0)


# ---- names -------------------------------------------------------------------------------

_NAME_ATTRIBUTES = {
    'C': 'COUNTRY_NAME', 'countryName': 'COUNTRY_NAME',
    'ST': 'STATE_OR_PROVINCE_NAME', 'stateOrProvinceName': 'STATE_OR_PROVINCE_NAME',
    'L': 'LOCALITY_NAME', 'localityName': 'LOCALITY_NAME',
    'O': 'ORGANIZATION_NAME', 'organizationName': 'ORGANIZATION_NAME',
    'OU': 'ORGANIZATIONAL_UNIT_NAME', 'organizationalUnitName': 'ORGANIZATIONAL_UNIT_NAME',
    'CN': 'COMMON_NAME', 'commonName': 'COMMON_NAME',
    'emailAddress': 'EMAIL_ADDRESS', 'E': 'EMAIL_ADDRESS',
    'serialNumber': 'SERIAL_NUMBER',
    'DC': 'DOMAIN_COMPONENT', 'domainComponent': 'DOMAIN_COMPONENT',
    'UID': 'USER_ID', 'userId': 'USER_ID',
    'title': 'TITLE', 'GN': 'GIVEN_NAME', 'givenName': 'GIVEN_NAME',
    'SN': 'SURNAME', 'surname': 'SURNAME', 'pseudonym': 'PSEUDONYM',
    'street': 'STREET_ADDRESS', 'streetAddress': 'STREET_ADDRESS',
    'postalCode': 'POSTAL_CODE', 'businessCategory': 'BUSINESS_CATEGORY',
}
_ATTRIBUTES_BY_LOWER = dict((key.lower(), value) for key, value in _NAME_ATTRIBUTES.items())


def build_name(subject):
    """A dict of attribute → value (or list of values, kept in order) → x509.Name.

    Attribute order is the dict's order, which is the order written in the playbook.
    """
    if not subject:
        raise CertificateError('subject must name at least one attribute (e.g. CN)')
    attributes = []
    for key, values in subject.items():
        oid = _ATTRIBUTES_BY_LOWER.get(str(key).lower())
        if oid is None:
            if re.match(r'^\d+(\.\d+)+$', str(key)):
                try:
                    oid_object = x509.ObjectIdentifier(str(key))
                except ValueError as exc:
                    raise CertificateError('subject attribute %s is not a valid OID (the first arc must '
                                           'be 0, 1 or 2, the second below 40 unless the first is 2): %s'
                                           % (key, str(exc).splitlines()[0][:200]))
            else:
                raise CertificateError('unknown subject attribute %r; use C, ST, L, O, OU, CN, '
                                       'emailAddress, DC, ... or a dotted OID' % (key,))
        else:
            oid_object = getattr(NameOID, oid)
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, (dict, list, tuple, set)):
                raise CertificateError('subject attribute %s must be a string (or a list of strings), '
                                       'not %s' % (key, type(value).__name__))
            if value is None or str(value) == '':
                raise CertificateError('subject attribute %s has an empty value' % key)
            try:
                attributes.append(x509.NameAttribute(oid_object, str(value)))
            except ValueError as exc:
                raise CertificateError('subject attribute %s=%r: %s' % (key, value, exc))
    return x509.Name(attributes)


def name_to_string(name):
    """OpenSSL's one-line style (`/C=GB/O=Alice Ltd/CN=x`), the form index.txt stores."""
    parts = []
    for attribute in name:
        short = _SHORT_NAMES.get(attribute.oid.dotted_string, attribute.oid.dotted_string)
        parts.append('%s=%s' % (short, attribute.value))
    return '/' + '/'.join(parts)


_SHORT_NAMES = {
    '2.5.4.6': 'C', '2.5.4.8': 'ST', '2.5.4.7': 'L', '2.5.4.10': 'O', '2.5.4.11': 'OU',
    '2.5.4.3': 'CN', '1.2.840.113549.1.9.1': 'emailAddress', '2.5.4.5': 'serialNumber',
    '0.9.2342.19200300.100.1.25': 'DC', '0.9.2342.19200300.100.1.1': 'UID', '2.5.4.12': 'title',
    '2.5.4.42': 'GN', '2.5.4.4': 'SN', '2.5.4.65': 'pseudonym', '2.5.4.9': 'street',
    '2.5.4.17': 'postalCode', '2.5.4.15': 'businessCategory',
}


# ---- reading -----------------------------------------------------------------------------

def read_file(path, what):
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        raise CertificateError('cannot read %s %s: %s' % (what, path, exc.strerror or exc))


def key_overwrite_problem(path, written, kept):
    """Why writing ``written`` (a certificate, a CSR) to ``path`` would destroy a key, else None.

    ``kept``: (option, path) pairs of the files it must not replace (symlinks resolved); any
    existing file holding a PEM private key (a combined cert+key file) is kept too.
    """
    real = os.path.realpath(path)
    for option, other in kept:
        if other and os.path.realpath(other) == real:
            return ('path and %s are the same file %s: the %s would replace it; give path its own file'
                    % (option, path, written))
    if os.path.isfile(path) and contains_private_key(read_file(path, 'file at path')):
        return ('path %s holds a private key (a PEM PRIVATE KEY block); a %s written there would replace '
                'it: choose another path' % (path, written))
    return None


def load_certificate(data, what='certificate'):
    try:
        # PEM, also after text: openssl ca writes its dump before the PEM (-out, newcerts/).
        if b'-----BEGIN' in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise CertificateError('cannot parse %s: %s' % (what, str(exc).splitlines()[0][:200]))


def load_pem_certificates(data, what='certificate chain'):
    blocks = re.findall(b'-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----', data, re.S)
    return [load_certificate(block, what) for block in blocks]


def load_csr(data, what='CSR'):
    """Parse a CSR and insist its self-signature holds (proof of key possession)."""
    if isinstance(data, str):
        data = data.encode('utf-8')
    try:
        if data.lstrip().startswith(b'-----'):
            csr = x509.load_pem_x509_csr(data)
        else:
            csr = x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise CertificateError('cannot parse %s: %s' % (what, str(exc).splitlines()[0][:200]))
    try:
        valid = csr.is_signature_valid
    except Exception as exc:  # unsupported key types raise here
        raise CertificateError('cannot check the signature of %s: %s' % (what, exc))
    if not valid:
        raise CertificateError('the signature of %s is invalid (not signed by its own key)' % what)
    return csr


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def fingerprint_sha256(cert):
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return ':'.join(digest[i:i + 2] for i in range(0, len(digest), 2))


def serial_hex(serial):
    """Upper-case hex with an even number of digits, as openssl ca names newcerts/."""
    text = '%X' % serial
    return ('0' + text) if len(text) % 2 else text


def signature_verifies(cert, issuer_public_key):
    """True if `cert` was signed by `issuer_public_key` (any of our key types)."""
    try:
        if isinstance(issuer_public_key, rsa.RSAPublicKey):
            issuer_public_key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                                     cert.signature_hash_algorithm)
        elif isinstance(issuer_public_key, ec.EllipticCurvePublicKey):
            issuer_public_key.verify(cert.signature, cert.tbs_certificate_bytes,
                                     ec.ECDSA(cert.signature_hash_algorithm))
        elif isinstance(issuer_public_key, ed25519.Ed25519PublicKey):
            issuer_public_key.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def signing_hash(digest, issuer_key):
    """Ed25519 signs without a separate hash; everything else uses `digest`."""
    if isinstance(issuer_key, ed25519.Ed25519PrivateKey):
        return None
    if digest not in DIGESTS:
        raise CertificateError('digest must be one of %s' % ', '.join(DIGESTS))
    return getattr(hashes, digest.upper())()


def extension_or_none(cert, ext_class):
    try:
        return cert.extensions.get_extension_for_class(ext_class)
    except x509.ExtensionNotFound:
        return None
    except (ValueError, x509.UnsupportedGeneralNameType) as exc:
        # e.g. an IP name constraint with host bits set (OpenSSL accepts it), an x400Address
        raise CertificateError('cannot read the extensions of the certificate %s: %s'
                               % (name_to_string(cert.subject), exc))


def summary(cert):
    """What a user needs to see about a certificate (module results and diff)."""
    sans = extension_or_none(cert, x509.SubjectAlternativeName)
    basic = extension_or_none(cert, x509.BasicConstraints)
    return {
        'subject': name_to_string(cert.subject),
        'issuer': name_to_string(cert.issuer),
        'serial_number': cert.serial_number,
        'serial_number_hex': serial_hex(cert.serial_number),
        'not_before': asn1_time(not_before(cert)),
        'not_after': asn1_time(not_after(cert)),
        'fingerprint_sha256': fingerprint_sha256(cert),
        'public_key': describe_key(cert.public_key()),
        'subject_alt_name': general_names_to_strings(sans.value) if sans else [],
        'ca': bool(basic and basic.value.ca),
        'path_length': basic.value.path_length if basic else None,
        'extensions': sorted(ext.oid._name if hasattr(ext.oid, '_name') else ext.oid.dotted_string
                             for ext in cert.extensions),
    }


# ---- the wanted certificate --------------------------------------------------------------

class CertificateSpec:
    """Everything that defines the certificate to issue, minus serial and dates."""

    def __init__(self, profile, subject, public_key, extension_options, digest='sha256',
                 valid_days=None, not_after_time=None):
        self.profile = profile
        self.subject = subject
        self.public_key = public_key
        self.extension_options = extension_options
        self.digest = digest
        self.valid_days = valid_days if valid_days is not None else profile.valid_days
        self.not_after_time = not_after_time
        if self.valid_days is not None and self.valid_days < 1 and not_after_time is None:
            raise CertificateError('valid_days must be at least 1')

    def extensions(self, issuer_public_key, issuer_key_identifier=None):
        return build_extensions(self.profile, self.public_key, issuer_public_key,
                                self.extension_options, issuer_key_identifier)

    def validity(self, now):
        start = now - BACKDATE
        if self.not_after_time is not None:
            end = self.not_after_time
            if end <= now:
                raise CertificateError('not_after %s is in the past' % asn1_time(end))
        else:
            end = start + datetime.timedelta(days=self.valid_days)
        return start, end

    def differences(self, cert, issuer, now, renew_before_days):
        """Why `cert` is not the certificate we want (first reason), or None."""
        if public_key_der(cert.public_key()) != public_key_der(self.public_key):
            return 'public key differs'
        if cert.subject != self.subject:
            return 'subject differs'
        if cert.issuer != issuer.subject or not signature_verifies(cert, issuer.public_key):
            return 'issued by a different issuer'
        wanted = dict((ext.oid.dotted_string, (ext, critical)) for ext, critical in
                      ((x509.Extension(value.oid, critical, value), critical)
                       for value, critical in self.extensions(issuer.public_key, issuer.key_identifier)))
        present = dict((ext.oid.dotted_string, ext) for ext in cert.extensions)
        if set(wanted) != set(present):
            return 'extensions differ (%s)' % ', '.join(sorted(
                _ext_name(oid) for oid in set(wanted) ^ set(present)))
        for oid, (ext, critical) in wanted.items():
            if present[oid].critical != critical or present[oid].value != ext.value:
                return '%s differs' % _ext_name(oid)
        expected_hash = signing_hash(self.digest, issuer.private_key) if issuer.private_key else None
        if issuer.private_key is not None and _hash_name(cert.signature_hash_algorithm) != \
                _hash_name(expected_hash):
            return 'digest differs'
        if now < not_before(cert):
            return 'not yet valid'
        if not_after(cert) <= now:
            return 'expired'
        if renew_before_days and not_after(cert) - now <= datetime.timedelta(days=renew_before_days):
            return 'expires within renew_before_days (%d)' % renew_before_days
        if self.not_after_time is not None:
            if not_after(cert) != self.not_after_time:
                return 'not_after differs'
        elif not_after(cert) - not_before(cert) != datetime.timedelta(days=self.valid_days):
            return 'validity period differs'
        return None

    def builder(self, issuer_subject, issuer_public_key, now, issuer_key_identifier=None):
        """An unsigned builder without serial: the serial is allocated under the CA lock."""
        start, end = self.validity(now)
        builder = (x509.CertificateBuilder()
                   .subject_name(self.subject)
                   .issuer_name(issuer_subject)
                   .public_key(self.public_key)
                   .not_valid_before(start)
                   .not_valid_after(end))
        for value, critical in self.extensions(issuer_public_key, issuer_key_identifier):
            builder = builder.add_extension(value, critical=critical)
        return builder

    def preview(self, issuer_subject, now):
        """Summary of the certificate that would be issued (check/diff mode)."""
        start, end = self.validity(now)
        options = self.extension_options
        return {
            'subject': name_to_string(self.subject),
            'issuer': name_to_string(issuer_subject),
            'serial_number': None,
            'not_before': asn1_time(start),
            'not_after': asn1_time(end),
            'public_key': describe_key(self.public_key),
            'subject_alt_name': list(options.subject_alt_name),
            'ca': self.profile.is_ca,
            'path_length': options.path_length if self.profile.is_ca else None,
        }


def _hash_name(algorithm):
    return algorithm.name if algorithm is not None else None


def _ext_name(dotted):
    try:
        return x509.ObjectIdentifier(dotted)._name
    except Exception:
        return dotted
