#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: csr
short_description: Private key and certificate signing request on the host that uses the key
version_added: 0.1.0
description:
  - Runs on the host that will use the key (an OCSP responder, a web server). Creates the
    private key at O(privatekey_path) if it is missing (mode C(0600)) and a CSR for it with
    O(subject) and O(subject_alt_name), written to O(path) and/or returned as RV(csr).
  - Feed RV(csr) to M(pkiops.ocsp.ca_cert) or M(pkiops.ocsp.ocsp_signer) delegated to the CA
    host; the key never leaves this host.
  - Idempotent. The CSR at O(path) is rewritten only when its public key, subject or
    subject alternative names differ. Without O(path) the task changes only when it
    generates the key.
  - Nothing is written when the task fails. The directories of O(privatekey_path) and
    O(path) must exist and be writable before a new key is written.
author:
  - pkiops.ocsp developers (@pkiops)
extends_documentation_fragment:
  - ansible.builtin.files
  - pkiops.ocsp.private_key
  - pkiops.ocsp.subject
attributes:
  check_mode:
    support: full
    description: Nothing is written; RV(csr) is null when the key would have to be generated.
  diff_mode:
    support: full
    description: Before/after summaries of the CSR.
options:
  privatekey_path:
    required: true
  subject:
    required: true
  path:
    description:
      - Where the CSR is written (PEM). Optional; RV(csr) is returned either way.
      - Refused when it is a file of a CA directory (its certificate, chain or key, C(index.txt),
        C(serial), C(crlnumber), C(openssl.cnf), C(crl/ca.crl.pem), a copy in C(newcerts/)) or a
        private key.
    type: path
  digest:
    description: Hash of the CSR's self-signature (ignored for Ed25519 keys).
    type: str
    default: sha256
    choices: [sha256, sha384, sha512]
  force:
    description: Rewrite the CSR at O(path) even if it matches.
    type: bool
    default: false
  backup:
    description: Keep a timestamped copy of a CSR file that is replaced.
    type: bool
    default: false
seealso:
  - module: pkiops.ocsp.ca_cert
  - module: pkiops.ocsp.ocsp_signer
requirements:
  - cryptography >= 38.0
'''

EXAMPLES = r'''
- name: Key and CSR of an OCSP responder, on the responder
  pkiops.ocsp.csr:
    privatekey_path: /etc/ocsp-responder/signer.key.pem
    privatekey_type: ECC
    subject: {O: Alice Ltd, CN: "{{ inventory_hostname }}"}
    path: /etc/ocsp-responder/signer.csr.pem
  register: signer_csr
'''

RETURN = r'''
csr:
  description: The CSR in PEM (null in check mode when the key does not exist yet).
  returned: success
  type: str
changed_reason:
  description: Why the task changed something (null when it did not).
  returned: always
  type: str
  sample: private key generated
public_key_fingerprint:
  description: SHA-256 of the public key info, upper-case colon hex.
  returned: success
  type: str
subject:
  description: Subject of the CSR, OpenSSL one-line form.
  returned: success
  type: str
subject_alt_name:
  description: Subject alternative names of the CSR.
  returned: success
  type: list
  elements: str
privatekey_path:
  description: Path of the private key.
  returned: always
  type: str
path:
  description: Path of the CSR file (null without O(path)).
  returned: always
  type: str
backup_file:
  description: Name of the backup of a replaced CSR.
  returned: changed and O(backup=true)
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pkiops.ocsp.plugins.module_utils.csr import CsrRequest
from ansible_collections.pkiops.ocsp.plugins.module_utils.issuance import (
    PRIVATE_KEY_ARGS, SUBJECT_ARGS, merged_spec)


def main():
    argument_spec = merged_spec(PRIVATE_KEY_ARGS, SUBJECT_ARGS)
    argument_spec['privatekey_path']['required'] = True
    argument_spec['subject']['required'] = True
    argument_spec.update(
        path=dict(type='path'),
        digest=dict(type='str', default='sha256', choices=['sha256', 'sha384', 'sha512']),
        force=dict(type='bool', default=False),
        backup=dict(type='bool', default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, add_file_common_args=True,
                           supports_check_mode=True)
    CsrRequest(module).run()


if __name__ == '__main__':
    main()
