#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: ocsp_signer
short_description: Create and renew an OCSP responder's delegated signing certificate
version_added: 0.1.0
description:
  - Issues the certificate an OCSP responder signs its answers with, from the CA in
    O(issuer_dir) (the CA whose certificates the responder answers for, RFC 6960 4.2.2.2).
  - Extensions, as in the OpenSSL guide's C([ocsp]) section; basicConstraints CA:FALSE
    (critical), keyUsage digitalSignature (critical), extendedKeyUsage OCSPSigning
    (critical), id-pkix-ocsp-nocheck, subject/authority key identifiers.
  - Because of id-pkix-ocsp-nocheck a signer certificate cannot itself be checked for
    revocation, so it is short-lived by default (30 days) and renewed O(renew_before_days)
    days before it expires (by default 10, or a third of a shorter O(valid_days)). Run it
    regularly (e.g. from a daily playbook).
  - The key is generated where the module runs (O(privatekey_path)), or the module signs a
    CSR (O(csr_path)/O(csr_content)) so that the key stays on the responder host.
  - Idempotent with the same rules as M(pkiops.ocsp.ca_cert); RV(changed_reason) says why it
    changed. Nothing is written when the task fails.
author:
  - pkiops.ocsp developers (@pkiops)
extends_documentation_fragment:
  - ansible.builtin.files
  - pkiops.ocsp.issuer
  - pkiops.ocsp.private_key
  - pkiops.ocsp.subject
  - pkiops.ocsp.certificate
attributes:
  check_mode:
    support: full
    description: Nothing is written; the result shows what would be issued.
  diff_mode:
    support: full
    description: Before/after summaries of the certificate.
options:
  issuer_dir:
    required: true
  path:
    required: true
  valid_days:
    default: 30
notes:
  - One of O(privatekey_path), O(csr_path) or O(csr_content) is required.
  - Reissuing does not revoke the superseded signer certificate; it simply expires.
seealso:
  - module: pkiops.ocsp.ca_cert
  - module: pkiops.ocsp.csr
requirements:
  - cryptography >= 38.0
'''

EXAMPLES = r'''
- name: OCSP signing pair for the intermediate CA, key generated on the CA host
  pkiops.ocsp.ocsp_signer:
    issuer_dir: /root/ca/intermediate
    issuer_passphrase: "{{ intermediate_passphrase }}"
    privatekey_path: /root/ca/intermediate/private/ocsp.example.com.key.pem
    privatekey_passphrase: "{{ ocsp_passphrase }}"
    path: /root/ca/intermediate/certs/ocsp.example.com.cert.pem
    subject: {C: GB, ST: England, O: Alice Ltd, OU: Alice Ltd Certificate Authority, CN: ocsp.example.com}

- name: Key and CSR on the responder host
  pkiops.ocsp.csr:
    privatekey_path: /etc/ocsp-responder/signer.key.pem
    subject: {CN: "{{ inventory_hostname }}"}
  register: signer_csr

- name: Signer certificate from the CA host
  pkiops.ocsp.ocsp_signer:
    issuer_dir: /root/ca/intermediate
    issuer_passphrase: "{{ intermediate_passphrase }}"
    csr_content: "{{ signer_csr.csr }}"
    copy_from_csr: [subject]
    path: "/root/ca/intermediate/certs/ocsp-{{ inventory_hostname }}.cert.pem"
  delegate_to: pki-ca
  register: signer_cert
'''

RETURN = r'''
changed_reason:
  description: Why the task changed something (null when it did not).
  returned: always
  type: str
  sample: expires within renew_before_days (10)
path:
  description: Path of the certificate.
  returned: always
  type: str
serial_number:
  description: Serial number (null in check mode when a new certificate would be issued).
  returned: success
  type: int
serial_number_hex:
  description: Serial number in upper-case hex, the name of its file under newcerts/.
  returned: success
  type: str
subject:
  description: Subject, OpenSSL one-line form.
  returned: success
  type: str
issuer:
  description: Issuer, OpenSSL one-line form.
  returned: success
  type: str
subject_alt_name:
  description: Subject alternative names of the certificate.
  returned: success
  type: list
  elements: str
not_before:
  description: Start of validity, C(YYYYMMDDHHMMSSZ).
  returned: success
  type: str
not_after:
  description: End of validity, C(YYYYMMDDHHMMSSZ).
  returned: success
  type: str
fingerprint_sha256:
  description: SHA-256 fingerprint of the certificate (null in check mode for a new one).
  returned: success
  type: str
public_key_fingerprint:
  description: SHA-256 of the subject public key info.
  returned: success
  type: str
certificate:
  description: The certificate in PEM (null in check mode for a new one).
  returned: success
  type: str
chain:
  description: The issuer's chain (issuer first, root last) in PEM, for the responder config.
  returned: success, except in check mode when a new certificate would be issued
  type: str
profile:
  description: Always C(ocsp_signer), the profile the certificate is checked or issued with.
  returned: always
  type: str
  sample: ocsp_signer
privatekey_path:
  description: Path of the private key when O(privatekey_path) is used.
  returned: when a private key is used
  type: str
backup_file:
  description: Name of the backup of the replaced certificate.
  returned: changed and O(backup=true)
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pkiops.ocsp.plugins.module_utils.issuance import (
    CERTIFICATE_ARGS, CERTIFICATE_MUTUALLY_EXCLUSIVE, ISSUER_ARGS, PRIVATE_KEY_ARGS, SUBJECT_ARGS,
    CertificateIssuance, merged_spec)


def main():
    argument_spec = merged_spec(ISSUER_ARGS, PRIVATE_KEY_ARGS, SUBJECT_ARGS, CERTIFICATE_ARGS)
    argument_spec['issuer_dir']['required'] = True
    argument_spec['path']['required'] = True
    argument_spec['valid_days']['default'] = 30
    # renew_before_days stays None: the profile's 10 days, a third of a shorter validity
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=CERTIFICATE_MUTUALLY_EXCLUSIVE,
        add_file_common_args=True,
        supports_check_mode=True,
    )
    CertificateIssuance(module, 'ocsp_signer').run()


if __name__ == '__main__':
    main()
