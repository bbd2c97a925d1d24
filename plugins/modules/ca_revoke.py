#!/usr/bin/python
# Copyright (c) pkiops.ocsp contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ca_revoke
short_description: Revoke a certificate in an OpenSSL-compatible CA database, or lift a hold
version_added: 0.1.0
description:
  - Marks a certificate as revoked in the C(index.txt) of a CA directory, the database that
    C(openssl ca), C(openssl ocsp -index) and the pkiops.ocsp OCSP responder read.
  - Works on CA directories created by M(pkiops.ocsp.ca_cert) and on directories written by
    C(openssl ca) by hand.
  - The change is one atomic rewrite of C(index.txt) under an exclusive lock on
    C(index.txt.lock), so parallel forks revoking or issuing on the same CA lose nothing.
    C(openssl ca) does not honour that lock; do not run it at the same time.
  - Idempotent. Revoking an already revoked certificate with the same (or no) reason is no
    change; its recorded revocation date is kept unless O(revocation_date) is given.
    A different O(reason) updates a C(certificateHold), for example into C(keyCompromise).
  - Any revocation other than C(certificateHold) is permanent. Lifting it (O(state=active)),
    putting it on hold or changing its reason or invalidity date fails.
  - Publishing the new state (CRL, pushing C(index.txt) to OCSP responders) is not done here.
author:
  - pkiops.ocsp developers (@pkiops)
requirements:
  - cryptography >= 38.0 (on the host holding the CA)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Computes the new entries (with O(all_certificates_of_key), those of the other certificates too)
        and every failure; writes nothing.
  diff_mode:
    support: full
    details: Shows the index entries before and after.
  platform:
    platforms: posix
options:
  issuer_dir:
    description:
      - The CA directory whose database records the certificate (the CA that issued it).
      - Must contain C(index.txt); C(certs/ca.cert.pem) is needed when the certificate is given
        by O(path) or O(content), to check that this CA issued it.
    type: path
    required: true
  serial_number:
    description:
      - Serial number of the certificate to revoke.
      - An integer, a hex string with C(0x) prefix (V(0x1003)) or colon-separated hex octets
        (V(10:03)). A string of plain decimal digits is read as a decimal number, so the hex
        serial V(1003) as printed in C(index.txt) must be written V(0x1003).
      - Quote colon-hex values in YAML. Unquoted, C(10:03) is the base-60 integer 603 for
        the YAML parser, and the module only ever sees that integer.
      - Exactly one of O(serial_number), O(path) and O(content) is required.
    type: raw
  path:
    description:
      - Path to the certificate (PEM or DER) to revoke, on the host running the module.
      - The certificate must be issued by the CA of O(issuer_dir) (issuer name, authority key
        identifier and signature are checked) and be recorded in its database.
    type: path
  content:
    description:
      - The PEM certificate to revoke, as text. Same checks as O(path).
    type: str
  reason:
    description:
      - RFC 5280 revocation reason in OpenSSL's spelling, as C(openssl ca -crl_reason) takes it.
      - Omitted on a new revocation, no reason is recorded (RFC 5280 prefers an absent reason
        code to V(unspecified)). Omitted on an already revoked certificate, the recorded reason
        is kept.
      - V(privilegeWithdrawn) and V(aACompromise) are not offered because C(openssl ca) refuses an
        index that carries them.
      - V(removeFromCRL) is not offered either. It marks a certificate released from hold
        (RFC 5280 section 5.3.1) and does not revoke. Use O(state=active) to release a hold.
    type: str
    choices:
      - unspecified
      - keyCompromise
      - CACompromise
      - affiliationChanged
      - superseded
      - cessationOfOperation
      - certificateHold
  revocation_date:
    description:
      - When the certificate was revoked, ISO 8601 (V(2026-01-31T12:00:00Z); no zone means UTC)
        or ASN.1 TIME (V(20260131120000Z)). Whole seconds; not in the future.
      - Default is now for a new revocation, and the recorded date for an already revoked
        certificate (so re-running a task is no change).
    type: str
  invalidity_date:
    description:
      - When the key is known or suspected to have been compromised; same formats as
        O(revocation_date).
      - Only with O(reason=keyCompromise) or O(reason=CACompromise); OpenSSL's index records
        it as C(keyTime)/C(CAkeyTime) (what C(openssl ca -crl_compromise) writes) and puts it
        into the CRL's invalidity date extension.
    type: str
  hold_instruction:
    description:
      - Hold instruction of a O(reason=certificateHold), as C(openssl ca -crl_hold) records it.
      - One of V(holdInstructionNone), V(holdInstructionCallIssuer), V(holdInstructionReject)
        or a dotted OID.
    type: str
  all_certificates_of_key:
    description:
      - Also revoke every other certificate of this CA that certifies the same public key as the
        selected one and is still valid (C(V) in C(index.txt), or released from hold), with the
        reason, invalidity date and hold instruction the selected certificate has after the task.
        Their revocation date is O(revocation_date) if given, else the selected certificate's when
        this task revokes it, else the time of the task. Meant for O(reason=keyCompromise) and
        O(reason=CACompromise), so that a compromised key is revoked with all its certificates (older
        ones issued before a renewal with other names, say).
      - The other certificates are found through their copies in the CA's C(newcerts/) archive
        (C(<SERIAL>.pem), as C(openssl ca) and M(pkiops.ocsp.ca_cert) write them; the text dump that
        C(openssl ca) puts before the PEM is fine). A copy counts only if it holds that serial and was
        issued by this CA. A valid certificate whose copy is missing, unreadable or not its own cannot
        be compared and is left valid; the task warns with its serial, so it can be revoked by
        O(serial_number). Certificates of the key that are on hold, or marked expired (C(E)), are left
        as they are.
      - The selected certificate's key is read from O(path) or O(content), or for O(serial_number) from its
        copy in C(newcerts/). When there is no such copy, or its key type cannot be loaded, the selected
        certificate is revoked all the same and the task warns that no other certificate was searched.
      - All changes are one write of C(index.txt) under its lock; check and diff mode show all of them.
        Revoked certificates are listed in RV(also_revoked).
      - Only with O(state=revoked).
    type: bool
    default: false
  state:
    description:
      - V(revoked) revokes the certificate.
      - V(active) lifts a C(certificateHold), making the certificate valid again. Any other
        revocation is permanent and the module fails. A certificate that is not revoked is
        left alone.
      - When C(index.txt.attr) says C(unique_subject = yes) (OpenSSL's default when it is
        missing) and another valid certificate has the same subject, lifting the hold fails;
        C(openssl ca) cannot load a database with two valid entries for one subject.
    type: str
    choices: [revoked, active]
    default: revoked
notes:
  - Serial numbers are returned as an integer and in the hex spellings of C(index.txt) and of
    C(openssl x509 -serial).
seealso:
  - module: pkiops.ocsp.ca_cert
  - name: OpenSSL ca command
    description: The C(openssl ca) manual, which defines index.txt and the revocation options.
    link: https://docs.openssl.org/3.0/man1/openssl-ca/
"""

EXAMPLES = r"""
- name: Revoke a server certificate whose key leaked
  pkiops.ocsp.ca_revoke:
    issuer_dir: /root/ca/intermediate
    path: /root/ca/intermediate/certs/test.example.com.cert.pem
    reason: keyCompromise
    invalidity_date: "2026-01-30T00:00:00Z"

- name: Revoke a leaked key with every valid certificate of it (older ones too)
  pkiops.ocsp.ca_revoke:
    issuer_dir: /root/ca/intermediate
    path: /root/ca/intermediate/certs/test.example.com.cert.pem
    reason: keyCompromise
    all_certificates_of_key: true
  register: revocation

- name: Show the other certificates of that key that were revoked
  ansible.builtin.debug:
    msg: "{{ revocation.also_revoked | map(attribute='serial_hex') | list }}"

- name: Revoke by serial (hex as printed in index.txt needs the 0x prefix)
  pkiops.ocsp.ca_revoke:
    issuer_dir: /root/ca/intermediate
    serial_number: "0x1003"
    reason: superseded

- name: Suspend a certificate
  pkiops.ocsp.ca_revoke:
    issuer_dir: /root/ca/intermediate
    serial_number: "10:04"
    reason: certificateHold

- name: Lift the suspension
  pkiops.ocsp.ca_revoke:
    issuer_dir: /root/ca/intermediate
    serial_number: "10:04"
    state: active

- name: Revoke a client certificate fetched from its host, on the CA host
  pkiops.ocsp.ca_revoke:
    issuer_dir: /srv/pki/intermediate
    content: "{{ client_cert.content | b64decode }}"
    reason: cessationOfOperation
  delegate_to: pki-ca.example.com
"""

RETURN = r"""
serial_number:
  description: Serial number of the certificate.
  returned: success
  type: int
  sample: 4099
serial_hex:
  description: The serial as C(index.txt) and C(newcerts/) spell it.
  returned: success
  type: str
  sample: "1003"
serial_colon_hex:
  description: The serial as colon-separated hex octets.
  returned: success
  type: str
  sample: "10:03"
subject:
  description: Subject of the certificate as recorded in C(index.txt) (OpenSSL one-line form).
  returned: success
  type: str
  sample: /C=GB/O=Alice Ltd/CN=test.example.com
status_before:
  description: Database status before the task, V (valid), R (revoked) or E (expired).
  returned: success
  type: str
  sample: V
status_after:
  description: Database status after the task (what it would be, in check mode).
  returned: success
  type: str
  sample: R
reason:
  description: Recorded revocation reason after the task; null when none.
  returned: success
  type: str
  sample: keyCompromise
revocation_date:
  description: Recorded revocation date after the task (ISO 8601, UTC); null when not revoked.
  returned: success
  type: str
  sample: "2026-11-25T14:11:39+00:00"
revocation_date_asn1:
  description: The same date as written in C(index.txt).
  returned: success
  type: str
  sample: 261125141139Z
invalidity_date:
  description: Recorded invalidity (compromise) date, ISO 8601; null when none.
  returned: success
  type: str
  sample: "2026-01-30T00:00:00+00:00"
hold_instruction:
  description: Recorded hold instruction of a certificateHold; null when none.
  returned: success
  type: str
  sample: holdInstructionReject
also_revoked:
  description:
    - The other certificates of the same key revoked by this task (what would be revoked, in check
      mode), with O(all_certificates_of_key=true); they get the reason and dates of RV(reason),
      RV(revocation_date) and RV(invalidity_date). Empty when there are none or the option is off.
  returned: success
  type: list
  elements: dict
  sample:
    - serial_number: 4098
      serial_hex: "1002"
      subject: /C=GB/O=Alice Ltd/CN=old.example.com
      status_before: V
  contains:
    serial_number:
      description: Serial number of the certificate.
      type: int
    serial_hex:
      description: The serial as C(index.txt) and C(newcerts/) spell it.
      type: str
    subject:
      description: Subject of the certificate as recorded in C(index.txt).
      type: str
    status_before:
      description: Database status before the task (V, or R for a certificate released from hold).
      type: str
index_path:
  description: The database that was read (and written when changed).
  returned: success
  type: str
  sample: /root/ca/intermediate/index.txt
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.pkiops.ocsp.plugins.module_utils.ca_db import RELEASED_REASON, REASONS
from ansible_collections.pkiops.ocsp.plugins.module_utils.ca_dir import (
    CAError,
    CRYPTOGRAPHY_IMPORT_ERROR,
    HAS_CRYPTOGRAPHY,
)
from ansible_collections.pkiops.ocsp.plugins.module_utils.revocation import Revocation


def main():
    module = AnsibleModule(
        argument_spec=dict(
            issuer_dir=dict(type="path", required=True),
            serial_number=dict(type="raw"),
            path=dict(type="path"),
            content=dict(type="str"),
            reason=dict(type="str", choices=[reason for reason in REASONS if reason != RELEASED_REASON]),
            revocation_date=dict(type="str"),
            invalidity_date=dict(type="str"),
            hold_instruction=dict(type="str"),
            state=dict(type="str", choices=["revoked", "active"], default="revoked"),
            all_certificates_of_key=dict(type="bool", default=False),
        ),
        mutually_exclusive=[("serial_number", "path", "content")],
        required_one_of=[("serial_number", "path", "content")],
        supports_check_mode=True,
    )
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=CRYPTOGRAPHY_IMPORT_ERROR)
    params = module.params
    try:
        revocation = Revocation(
            params["issuer_dir"], serial_number=params["serial_number"], cert_path=params["path"],
            cert_content=params["content"], reason=params["reason"],
            revocation_date=params["revocation_date"], invalidity_date=params["invalidity_date"],
            hold_instruction=params["hold_instruction"], state=params["state"],
            all_certificates_of_key=params["all_certificates_of_key"])
        result, diff = revocation.run(check_mode=module.check_mode)
    except CAError as exc:
        module.fail_json(msg=str(exc))
    for warning in revocation.warnings:
        module.warn(warning)
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
