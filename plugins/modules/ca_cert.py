#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: ca_cert
short_description: Create CAs and issue certificates in openssl-ca compatible directories
version_added: 0.1.0
description:
  - Creates a root or intermediate CA in a directory that C(openssl ca) can also use
    (C(index.txt), C(serial), C(newcerts/), C(private/ca.key.pem), C(certs/ca.cert.pem),
    C(certs/ca-chain.cert.pem), a generated C(openssl.cnf)), and issues server, client and
    server+client certificates from such a directory.
  - Extensions come from the O(profile) and the options, never from a CSR, so a CSR cannot
    smuggle C(CA:TRUE) or other extensions into a certificate.
  - Idempotent. The certificate is reissued when the subject, public key, issuer,
    extensions (profile, O(subject_alt_name), URLs, O(path_length)), O(digest) or validity
    period differ from the existing certificate, when it expires within
    O(renew_before_days), or when the issuer's database has it revoked.
    RV(changed_reason) says why.
  - Every issued certificate is recorded in the issuer's database (a root in its own),
    under the database lock, so parallel forks never reuse a serial.
  - Profile defaults (validity / renew_before_days) are root_ca 7300/365,
    intermediate_ca 3650/180, server, client and server_client 375/30 days.
  - Nothing is written when the task fails.
  - The module puts no name constraints on the CAs it creates; a CA made otherwise may
    carry them, and they are enforced when issuing from it or below it (see O(issuer_dir)).
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
  profile:
    description:
      - C(root_ca) creates a self-signed root in O(ca_dir); C(intermediate_ca) creates a CA in
        O(ca_dir) signed by O(issuer_dir); C(server), C(client), C(server_client) issue an
        end-entity certificate (CA:FALSE, keyUsage digitalSignature plus keyEncipherment for
        RSA keys, extendedKeyUsage serverAuth and/or clientAuth) written to O(path).
      - CA profiles get basicConstraints CA:TRUE (critical) and keyUsage digitalSignature,
        keyCertSign, cRLSign (critical), like the OpenSSL guide's v3_ca/v3_intermediate_ca.
    type: str
    required: true
    choices: [root_ca, intermediate_ca, server, client, server_client]
  ca_dir:
    description:
      - For CA profiles, the directory of the CA being created; its layout is created if
        missing. The CA key is O(ca_dir)/private/ca.key.pem (0600, under private/ 0700,
        generated per the privatekey_* options and encrypted with O(privatekey_passphrase)),
        the certificate O(ca_dir)/certs/ca.cert.pem and the chain up to the root
        O(ca_dir)/certs/ca-chain.cert.pem.
      - Its parent directory must exist (missing parents are not created); otherwise the task
        fails, in check mode too.
      - Required for CA profiles; not used by the others.
    type: path
  path_length:
    description:
      - basicConstraints pathlen of a CA. Root default is no limit; intermediate default is
        C(0) (it cannot sign further CAs), as in the OpenSSL guide.
      - Must be lower than the issuer's own path length.
    type: int
  openssl_cnf:
    description:
      - Settings of the C(openssl.cnf) generated in O(ca_dir) for CA profiles, used when
        someone runs C(openssl ca -config DIR/openssl.cnf) on the directory by hand.
      - These URLs go into the certificates C(openssl ca) issues from this CA, not into the
        CA's own certificate.
    type: dict
    suboptions:
      default_days:
        description: C(default_days) of C(openssl ca).
        type: int
        default: 375
      default_crl_days:
        description: C(default_crl_days) of C(openssl ca -gencrl).
        type: int
        default: 30
      default_md:
        description: C(default_md); defaults to O(digest).
        type: str
        choices: [sha256, sha384, sha512]
      policy:
        description: Subject policy section used by C(openssl ca).
        type: str
        default: policy_loose
        choices: [policy_loose, policy_strict]
      serial_policy:
        description:
          - C(random) sets C(rand_serial = yes).
          - C(sequential) leaves C(rand_serial) out (OpenSSL 3 issues random serials whenever it is
            present) so that C(openssl ca) uses the C(serial) file.
        type: str
        default: random
        choices: [random, sequential]
      ocsp_url:
        description: OCSP URLs for the C(server_cert) and C(usr_cert) sections.
        type: list
        elements: str
      crl_url:
        description: CRL URL for the C(server_cert) and C(usr_cert) sections.
        type: str
      ca_issuers_url:
        description: caIssuers URL for the C(server_cert) and C(usr_cert) sections.
        type: str
  path:
    description:
      - Where the certificate is written for the C(server), C(client) and C(server_client)
        profiles (required for them). CA profiles write into O(ca_dir) and refuse this option.
  privatekey_path:
    description:
      - Path of the subject's private key, for end-entity profiles (CA keys live in
        O(ca_dir)). Generated there (mode C(0600), PKCS#8 PEM) if the file does not exist;
        an existing key is used as it is and never replaced.
      - One of O(privatekey_path), O(csr_path) or O(csr_content) is required for end-entity
        profiles.
notes:
  - With O(csr_path)/O(csr_content) and C(delegate_to) the CA host, the key stays on its
    host; the run is idempotent (same CSR public key, same options, valid certificate at
    O(path) on the CA host means no change). Copy RV(certificate) back to the host.
  - Reissuing does not revoke the superseded certificate; use M(pkiops.ocsp.ca_revoke).
seealso:
  - module: pkiops.ocsp.ocsp_signer
  - module: pkiops.ocsp.csr
  - module: pkiops.ocsp.ca_revoke
requirements:
  - cryptography >= 38.0
'''

EXAMPLES = r'''
- name: Root CA (the guide's /root/ca)
  pkiops.ocsp.ca_cert:
    profile: root_ca
    ca_dir: /root/ca
    privatekey_passphrase: "{{ root_passphrase }}"
    subject: {C: GB, ST: England, O: Alice Ltd, OU: Alice Ltd Certificate Authority, CN: Alice Ltd Root CA}

- name: Intermediate CA, signed by the root
  pkiops.ocsp.ca_cert:
    profile: intermediate_ca
    ca_dir: /root/ca/intermediate
    issuer_dir: /root/ca
    issuer_passphrase: "{{ root_passphrase }}"
    privatekey_passphrase: "{{ intermediate_passphrase }}"
    subject: {C: GB, ST: England, O: Alice Ltd, OU: Alice Ltd Certificate Authority, CN: Alice Ltd Intermediate CA}
    openssl_cnf:
      ocsp_url: [http://ocsp.example.com]

- name: Server certificate with a key generated on the CA host
  pkiops.ocsp.ca_cert:
    profile: server
    issuer_dir: /root/ca/intermediate
    issuer_passphrase: "{{ intermediate_passphrase }}"
    privatekey_path: /root/ca/intermediate/private/www.example.com.key.pem
    path: /root/ca/intermediate/certs/www.example.com.cert.pem
    subject: {CN: www.example.com}
    subject_alt_name: [DNS:www.example.com, DNS:example.com]
    ocsp_url: [http://ocsp.example.com]

- name: Key and CSR on the web server (the key never leaves it)
  pkiops.ocsp.csr:
    privatekey_path: /etc/ssl/private/web.key.pem
    subject: {CN: "{{ inventory_hostname }}"}
    subject_alt_name: ["DNS:{{ inventory_hostname }}"]
  register: web_csr

- name: Sign it on the CA host
  pkiops.ocsp.ca_cert:
    profile: server
    issuer_dir: /root/ca/intermediate
    issuer_passphrase: "{{ intermediate_passphrase }}"
    csr_content: "{{ web_csr.csr }}"
    copy_from_csr: [subject, subject_alt_name]
    path: "/root/ca/intermediate/certs/{{ inventory_hostname }}.cert.pem"
    ocsp_url: [http://ocsp.example.com]
  delegate_to: pki-ca
  register: web_cert

- name: Install the certificate on the web server
  ansible.builtin.copy:
    content: "{{ web_cert.certificate }}"
    dest: /etc/ssl/certs/web.cert.pem
    mode: "0644"
'''

RETURN = r'''
changed_reason:
  description: Why the task changed something (null when it did not).
  returned: always
  type: str
  sample: expires within renew_before_days (30)
path:
  description: Path of the certificate (O(path), or certs/ca.cert.pem in O(ca_dir)).
  returned: always
  type: str
serial_number:
  description: Serial number (null in check mode when a new certificate would be issued).
  returned: success
  type: int
  sample: 4096
serial_number_hex:
  description: Serial number in upper-case hex, the name of its file under newcerts/.
  returned: success
  type: str
  sample: "1000"
subject:
  description: Subject, OpenSSL one-line form.
  returned: success
  type: str
  sample: /C=GB/O=Alice Ltd/CN=www.example.com
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
  description:
    - For end-entity profiles, the issuer's chain (issuer first, root last) in PEM.
    - For CA profiles, the content of the new CA's chain file.
  returned: success, except in check mode when a new certificate would be issued
  type: str
profile:
  description: The O(profile) the certificate was checked or issued with.
  returned: always
  type: str
  sample: server
ca_dir:
  description: The CA directory (CA profiles).
  returned: success, CA profiles, except in check mode when a new certificate would be issued
  type: str
chain_path:
  description: The CA's chain file (CA profiles).
  returned: success, CA profiles, except in check mode when a new certificate would be issued
  type: str
privatekey_path:
  description: Path of the private key (CA profiles, end-entity with O(privatekey_path)).
  returned: when a private key is used
  type: str
backup_file:
  description: Name of the backup of the replaced certificate.
  returned: changed and O(backup=true)
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pkiops.ocsp.plugins.module_utils.issuance import (
    CA_ARGS, CERTIFICATE_ARGS, CERTIFICATE_MUTUALLY_EXCLUSIVE, ISSUER_ARGS, PRIVATE_KEY_ARGS,
    SUBJECT_ARGS, CertificateIssuance, merged_spec)

PROFILES = ['root_ca', 'intermediate_ca', 'server', 'client', 'server_client']


def main():
    argument_spec = merged_spec(ISSUER_ARGS, PRIVATE_KEY_ARGS, SUBJECT_ARGS, CERTIFICATE_ARGS, CA_ARGS)
    argument_spec['profile'] = dict(type='str', required=True, choices=PROFILES)
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=CERTIFICATE_MUTUALLY_EXCLUSIVE + [
            ('ca_dir', 'path'), ('ca_dir', 'privatekey_path'), ('ca_dir', 'csr_path'),
            ('ca_dir', 'csr_content')],
        required_if=[
            ('profile', 'root_ca', ['ca_dir']),
            ('profile', 'intermediate_ca', ['ca_dir', 'issuer_dir']),
            ('profile', 'server', ['issuer_dir', 'path']),
            ('profile', 'client', ['issuer_dir', 'path']),
            ('profile', 'server_client', ['issuer_dir', 'path']),
        ],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    CertificateIssuance(module, module.params['profile']).run()


if __name__ == '__main__':
    main()
