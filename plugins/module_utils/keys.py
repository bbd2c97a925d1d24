# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private keys: generate, serialize (AES-256 encrypted PEM), load, describe.

Runs on target hosts: Python 3.9+, cryptography >= 38.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import re

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised on hosts without the library
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = exc

KEY_TYPES = ('RSA', 'ECC', 'Ed25519')
CURVES = ('secp256r1', 'secp384r1', 'secp521r1')
DEFAULT_RSA_SIZE = 2048  # end-entity keys, as in the guide; CA keys use 4096
DEFAULT_CURVE = 'secp384r1'
MIN_RSA_SIZE = 2048


class PrivateKeyError(Exception):
    """A key cannot be generated, read or decrypted; the message is safe to show."""


class KeySpec:
    """What a generated key looks like. Fields left None accept any existing key."""

    def __init__(self, key_type=None, size=None, curve=None):
        if key_type is not None and key_type not in KEY_TYPES:
            raise PrivateKeyError('unknown private key type %r' % (key_type,))
        if size is not None and key_type not in (None, 'RSA'):
            raise PrivateKeyError('privatekey_size only applies to RSA keys')
        if curve is not None and key_type not in (None, 'ECC'):
            raise PrivateKeyError('privatekey_curve only applies to ECC keys')
        if size is not None and size < MIN_RSA_SIZE:
            raise PrivateKeyError('RSA keys shorter than %d bits are refused' % MIN_RSA_SIZE)
        if curve is not None and curve not in CURVES:
            raise PrivateKeyError('unknown curve %r; one of %s' % (curve, ', '.join(CURVES)))
        if key_type is None:
            key_type = 'ECC' if curve else 'RSA'
        self.key_type = key_type
        self.size = size
        self.curve = curve

    def generate(self, default_rsa_size=DEFAULT_RSA_SIZE):
        if self.key_type == 'RSA':
            return rsa.generate_private_key(public_exponent=65537, key_size=self.size or default_rsa_size)
        if self.key_type == 'ECC':
            return ec.generate_private_key(_curve(self.curve or DEFAULT_CURVE))
        return ed25519.Ed25519PrivateKey.generate()

    def mismatch(self, private_key, explicit_type):
        """Why an existing key does not fit the requested options, or None.

        Only options the user set are compared (explicit_type False means the type was not
        given), so an existing key made by openssl is used as it is.
        """
        described = describe_key(private_key)
        if explicit_type and described['type'] != self.key_type:
            return 'is %s, not %s' % (described['type'], self.key_type)
        if self.size and described.get('size') != self.size:
            return 'has %s bits, not %d' % (described.get('size'), self.size)
        if self.curve and described.get('curve') != self.curve:
            return 'uses curve %s, not %s' % (described.get('curve'), self.curve)
        return None


def _curve(name):
    return {'secp256r1': ec.SECP256R1, 'secp384r1': ec.SECP384R1, 'secp521r1': ec.SECP521R1}[name]()


def describe_key(key):
    """Type, size/curve of a private or public key, for messages and comparisons."""
    public = key.public_key() if hasattr(key, 'public_key') else key
    if isinstance(public, rsa.RSAPublicKey):
        return {'type': 'RSA', 'size': public.key_size}
    if isinstance(public, ec.EllipticCurvePublicKey):
        return {'type': 'ECC', 'curve': public.curve.name, 'size': public.curve.key_size}
    if isinstance(public, ed25519.Ed25519PublicKey):
        return {'type': 'Ed25519'}
    return {'type': type(public).__name__}


def serialize_private_key(key, passphrase=None):
    """PKCS#8 PEM; with a passphrase it is encrypted with PBES2/AES-256-CBC, which is what
    BestAvailableEncryption gives for PKCS#8 (the guide's `genrsa -aes256` equivalent)."""
    if passphrase:
        encryption = serialization.BestAvailableEncryption(_to_bytes(passphrase))
    else:
        encryption = serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def load_private_key(data, passphrase=None, what='private key', option=None):
    """Parse PEM (or DER) private key bytes; errors name `what`, never the passphrase.

    ``option``: the module option that carries the passphrase, named in the messages so that
    the user knows which one to set, correct or remove.
    """
    password = _to_bytes(passphrase) if passphrase else None
    encrypted = b'ENCRYPTED' in data[:200]
    if encrypted and password is None:
        raise PrivateKeyError('%s is encrypted and no passphrase was given%s'
                              % (what, ': set %s' % option if option else ''))
    loaders = (serialization.load_pem_private_key, serialization.load_der_private_key)
    if data.lstrip().startswith(b'-----'):
        loaders = loaders[:1]
    last_error = None
    for loader in loaders:
        try:
            return loader(data, password=password)
        except TypeError as exc:
            # Raised for "password given but key not encrypted" and the reverse.
            if password is not None and not encrypted:
                raise PrivateKeyError('%s is not encrypted but a passphrase was given%s'
                                      % (what, ' (%s): leave it out' % option if option else ''))
            last_error = exc
        except ValueError as exc:
            last_error = exc
    if encrypted:
        raise PrivateKeyError('cannot decrypt %s: wrong passphrase?%s'
                              % (what, ' Check %s' % option if option else ''))
    raise PrivateKeyError('cannot parse %s: %s' % (what, _short(last_error)))


def read_private_key_file(path, passphrase=None, what=None, option=None):
    what = what or 'private key %s' % path
    try:
        with open(path, 'rb') as handle:
            data = handle.read()
    except (IOError, OSError) as exc:
        raise PrivateKeyError('cannot read %s: %s' % (what, exc.strerror or exc))
    return load_private_key(data, passphrase, what, option)


def public_key_der(key):
    public = key.public_key() if hasattr(key, 'private_bytes') else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_fingerprint(key):
    """SHA-256 of the DER SubjectPublicKeyInfo, colon-separated hex."""
    digest = hashlib.sha256(public_key_der(key)).hexdigest().upper()
    return ':'.join(digest[i:i + 2] for i in range(0, len(digest), 2))


def public_key_pin(key):
    """base64(SHA-256(SPKI)), the HPKP/curl --pinnedpubkey form."""
    return base64.b64encode(hashlib.sha256(public_key_der(key)).digest()).decode('ascii')


# PKCS#1, SEC1, PKCS#8 and encrypted PKCS#8 blocks ("RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY", ...)
_PEM_PRIVATE_KEY_RE = re.compile(br'-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----')


def contains_private_key(data):
    """True when ``data`` holds a PEM private key block: such a file is never overwritten or
    deleted in place of a certificate."""
    return bool(_PEM_PRIVATE_KEY_RE.search(data))


def same_public_key(one, other):
    return public_key_der(one) == public_key_der(other)


def _to_bytes(value):
    return value if isinstance(value, bytes) else str(value).encode('utf-8')


def _short(exc):
    text = str(exc) if exc is not None else 'unknown format'
    return text.splitlines()[0][:200] if text else type(exc).__name__
