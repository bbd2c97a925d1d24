# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The signing CA (module_utils/issuance.py ISSUER_ARGS).
    DOCUMENTATION = r'''
options:
  issuer_dir:
    description:
      - The CA directory that signs (an C(openssl ca) compatible directory with its key at
        C(private/ca.key.pem) and its certificate at C(certs/ca.cert.pem)).
      - The issued certificate is recorded in its C(index.txt) and C(newcerts/).
      - The path length and name constraints (RFC 5280) of this CA and of the CAs above it
        in its C(certs/ca-chain.cert.pem) are checked first. A certificate whose subject or
        subject alternative names they do not permit (verifiers would reject it with
        C(permitted subtree violation) or C(excluded subtree violation)) is refused, in check
        mode too; so is one with a constrained name type that cannot be checked.
    type: path
  issuer_passphrase:
    description:
      - Passphrase of the issuer's private key.
    type: str
  serial_policy:
    description:
      - How the serial number is chosen. C(random) gives 158 random bits under a fixed top bit
        (a positive 159-bit number, 20 octets, unpredictable); C(sequential) takes the next number from the issuer's
        C(serial) file, as C(openssl ca) does.
    type: str
    default: random
    choices: [random, sequential]
  digest:
    description:
      - Hash of the issuer's signature. Ignored for Ed25519 issuers (they sign without a
        separate hash).
    type: str
    default: sha256
    choices: [sha256, sha384, sha512]
'''
