# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The subject's private key (module_utils/issuance.py PRIVATE_KEY_ARGS).
    DOCUMENTATION = r'''
options:
  privatekey_path:
    description:
      - Path of the subject's private key, on the host where the module runs.
      - Generated there (mode C(0600), PKCS#8 PEM) if the file does not exist; an existing
        key is used as it is and never replaced.
    type: path
  privatekey_type:
    description:
      - Type of a generated key.
      - When the key exists, it must be of this type if the option is given (the task fails
        otherwise; the key is never replaced automatically).
      - Defaults to C(RSA) (or C(ECC) when O(privatekey_curve) is given).
    type: str
    choices: [RSA, ECC, Ed25519]
  privatekey_size:
    description:
      - Size in bits of a generated RSA key (at least 2048). Defaults to 4096 for CA keys and
        2048 for other keys, as in the OpenSSL guide.
      - When given and the key exists, the existing key must have this size.
    type: int
  privatekey_curve:
    description:
      - Curve of a generated ECC key. Defaults to C(secp384r1).
      - When given and the key exists, the existing key must use this curve.
    type: str
    choices: [secp256r1, secp384r1, secp521r1]
  privatekey_passphrase:
    description:
      - Passphrase of the private key. A generated key is encrypted with it (PKCS#8,
        PBES2 with AES-256-CBC, like C(openssl genrsa -aes256)); an existing key is
        decrypted with it.
    type: str
'''
