# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Certificate options shared by ca_cert and ocsp_signer
    # (module_utils/issuance.py CERTIFICATE_ARGS).
    DOCUMENTATION = r'''
options:
  state:
    description:
      - C(present) issues the certificate when needed.
      - C(absent) removes the certificate file at O(path) (it does not revoke it; use
        M(pkiops.ocsp.ca_revoke)). Refused for CA profiles.
    type: str
    default: present
    choices: [present, absent]
  path:
    description:
      - Where the certificate is written (PEM), on the host where the module runs.
      - Refused when it is a file of a CA directory (its certificate, chain or key, C(index.txt),
        C(serial), C(crlnumber), C(openssl.cnf), C(crl/ca.crl.pem), a copy in C(newcerts/)), a
        private key, or O(privatekey_path)/O(csr_path).
    type: path
  csr_path:
    description:
      - Path of a certificate signing request; only its public key is used (and what
        O(copy_from_csr) lists). Its signature must be valid.
      - Use it, or O(csr_content), so that the key never leaves the host that made it.
    type: path
  csr_content:
    description:
      - A certificate signing request in PEM, e.g. the RV(pkiops.ocsp.csr#module:csr) result
        of M(pkiops.ocsp.csr) on another host.
    type: str
  copy_from_csr:
    description:
      - Fields taken from the CSR instead of the options. By default nothing but the
        public key is taken from a CSR; extensions in a CSR are never used.
      - C(subject) replaces O(subject), C(subject_alt_name) replaces O(subject_alt_name).
    type: list
    elements: str
    default: []
    choices: [subject, subject_alt_name]
  ocsp_url:
    description:
      - OCSP responder URLs of the issuer, written to the Authority Information Access
        extension (C(OCSP;URI:...)).
    type: list
    elements: str
  ca_issuers_url:
    description:
      - URL of the issuer's certificate, written to the Authority Information Access
        extension (C(caIssuers;URI:...)).
    type: str
  crl_url:
    description:
      - URL of the issuer's CRL, written to the CRL Distribution Points extension.
    type: str
  valid_days:
    description:
      - Validity in days from now (the start is backdated 5 minutes for clock skew).
      - Defaults to the profile's validity.
      - A certificate whose validity period differs is reissued.
    type: int
  not_after:
    description:
      - Absolute end of validity instead of O(valid_days), as C(YYYYMMDDHHMMSSZ) or ISO 8601
        (UTC when no zone is given). Fractions of a second are dropped (certificates carry
        whole seconds).
    type: str
  renew_before_days:
    description:
      - Reissue when the existing certificate expires within this many days.
      - Defaults to the profile's value, shortened to a third of O(valid_days) for short
        validities. A value not below O(valid_days) is refused (every run would reissue).
      - Not applied with an absolute O(not_after), where a reissue could only repeat the same
        expiry; to renew such a certificate, give a later O(not_after).
    type: int
  force:
    description:
      - Reissue even if the existing certificate matches.
    type: bool
    default: false
  backup:
    description:
      - Keep a timestamped copy of the certificate file that is replaced or removed.
    type: bool
    default: false
'''
