# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The issuing logic shared by the ca_cert and ocsp_signer modules.

Everything that can fail is checked before the first byte is written, so a failure
leaves every file as it was. The serial is allocated, the certificate signed and recorded
in the issuer's database under the database lock (see ca_db).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.pkiops.ocsp.plugins.module_utils import keys as keylib
from ansible_collections.pkiops.ocsp.plugins.module_utils.certs import (
    CertificateError, CertificateSpec, DIGESTS, build_name, cert_pem, extension_or_none, key_overwrite_problem,
    load_certificate, load_csr, load_pem_certificates, name_to_string, not_after, not_before, parse_time,
    read_file, signature_verifies, signing_hash, summary, utcnow, asn1_time)
from ansible_collections.pkiops.ocsp.plugins.module_utils.name_constraints import (
    NameConstraintError, NameConstraints, certificate_names, check as check_name_constraints)
from ansible_collections.pkiops.ocsp.plugins.module_utils.profiles import (
    ExtensionOptions, ProfileError, check_ia5_uri, get_profile, general_names_to_strings, parse_general_names)

try:
    from cryptography import x509
    from ansible_collections.pkiops.ocsp.plugins.module_utils.ca_dir import (
        CADirectory, CAError, ca_directory_of_archived_file, ca_directory_of_own_file, ca_directory_of_own_key,
        ca_file_problem)
    from ansible_collections.pkiops.ocsp.plugins.module_utils.ca_db import (
        CADatabase, openssl_oneline_subject)
    from ansible_collections.pkiops.ocsp.plugins.module_utils.fileops import (
        atomic_write, file_attributes_problem, unwritable_directory)
    IMPORT_ERROR = None
except ImportError:
    IMPORT_ERROR = traceback.format_exc()

    class CAError(Exception):  # keeps `except CAError` valid when the import failed
        pass


# ---- argument specs (mirrored by the doc fragments of the same names) ---------------------

PRIVATE_KEY_ARGS = dict(
    privatekey_path=dict(type='path'),
    privatekey_type=dict(type='str', choices=list(keylib.KEY_TYPES)),
    privatekey_size=dict(type='int'),
    privatekey_curve=dict(type='str', choices=list(keylib.CURVES)),
    privatekey_passphrase=dict(type='str', no_log=True),
)

SUBJECT_ARGS = dict(
    subject=dict(type='dict'),
    subject_alt_name=dict(type='list', elements='str'),
)

ISSUER_ARGS = dict(
    issuer_dir=dict(type='path'),
    issuer_passphrase=dict(type='str', no_log=True),
    serial_policy=dict(type='str', default='random', choices=['random', 'sequential']),
    digest=dict(type='str', default='sha256', choices=list(DIGESTS)),
)

CERTIFICATE_ARGS = dict(
    state=dict(type='str', default='present', choices=['present', 'absent']),
    path=dict(type='path'),
    csr_path=dict(type='path'),
    csr_content=dict(type='str'),
    copy_from_csr=dict(type='list', elements='str', default=[],
                       choices=['subject', 'subject_alt_name']),
    ocsp_url=dict(type='list', elements='str'),
    ca_issuers_url=dict(type='str'),
    crl_url=dict(type='str'),
    valid_days=dict(type='int'),
    not_after=dict(type='str'),
    renew_before_days=dict(type='int'),
    force=dict(type='bool', default=False),
    backup=dict(type='bool', default=False),
)

CA_ARGS = dict(
    ca_dir=dict(type='path'),
    path_length=dict(type='int'),
    openssl_cnf=dict(type='dict', apply_defaults=True, options=dict(
        default_days=dict(type='int', default=375),
        default_crl_days=dict(type='int', default=30),
        default_md=dict(type='str', choices=list(DIGESTS)),
        policy=dict(type='str', default='policy_loose', choices=['policy_loose', 'policy_strict']),
        serial_policy=dict(type='str', default='random', choices=['random', 'sequential']),
        ocsp_url=dict(type='list', elements='str'),
        crl_url=dict(type='str'),
        ca_issuers_url=dict(type='str'),
    )),
)

CERTIFICATE_MUTUALLY_EXCLUSIVE = [
    ('privatekey_path', 'csr_path', 'csr_content'),
    ('csr_path', 'privatekey_type'), ('csr_content', 'privatekey_type'),
    ('csr_path', 'privatekey_size'), ('csr_content', 'privatekey_size'),
    ('csr_path', 'privatekey_curve'), ('csr_content', 'privatekey_curve'),
    ('csr_path', 'privatekey_passphrase'), ('csr_content', 'privatekey_passphrase'),
    ('valid_days', 'not_after'),
]


def merged_spec(*parts):
    spec = {}
    for part in parts:
        for name, value in part.items():
            spec[name] = dict(value)
    return spec


class IssuanceError(Exception):
    """Fail the task with this message; nothing has been written."""


class _CAChanged(Exception):
    """Another process changed the CA's key or certificate after this run decided: decide again."""


# A key revoked for one of these reasons must never be certified again.
COMPROMISE_REASONS = ('keyCompromise', 'CACompromise')

# A fork that lost the race for a new CA decides again once the winner has written it; more
# rounds only happen while other forks keep changing the CA.
CA_DECISION_ATTEMPTS = 5


class Issuer:
    """The signing side: a CA directory's certificate and key (or a root signing itself)."""

    def __init__(self, subject, private_key, cert=None, ca_dir=None, chain_pem=b''):
        self.subject = subject
        self.private_key = private_key
        self.public_key = private_key.public_key()
        self.cert = cert
        self.ca_dir = ca_dir
        self.chain_pem = chain_pem
        self._ancestor_list = None  # found once: the pathlen and name-constraint checks both walk it

    @classmethod
    def from_directory(cls, path, passphrase):
        ca_dir = CADirectory(path)
        if not os.path.isdir(path):
            raise IssuanceError('issuer_dir %s does not exist' % path)
        cert = load_certificate(read_file(ca_dir.cert_path, 'issuer certificate'),
                                'issuer certificate %s' % ca_dir.cert_path)
        try:
            key = keylib.read_private_key_file(ca_dir.key_path, passphrase,
                                               'issuer key %s' % ca_dir.key_path, 'issuer_passphrase')
        except keylib.PrivateKeyError as exc:
            raise IssuanceError(str(exc))
        if not keylib.same_public_key(key, cert.public_key()):
            raise IssuanceError('issuer key %s does not match issuer certificate %s'
                                % (ca_dir.key_path, ca_dir.cert_path))
        basic = extension_or_none(cert, x509.BasicConstraints)
        if basic is None or not basic.value.ca:
            raise IssuanceError('issuer certificate %s is not a CA certificate (basicConstraints '
                                'CA:TRUE missing)' % ca_dir.cert_path)
        usage = extension_or_none(cert, x509.KeyUsage)
        if usage is not None and not usage.value.key_cert_sign:
            raise IssuanceError('issuer certificate %s lacks keyUsage keyCertSign' % ca_dir.cert_path)
        if os.path.exists(ca_dir.chain_path):
            chain_pem = read_file(ca_dir.chain_path, 'issuer chain')
        else:
            chain_pem = cert_pem(cert)
        return cls(cert.subject, key, cert, ca_dir, chain_pem)

    @property
    def key_identifier(self):
        """The issuer certificate's subjectKeyIdentifier (None for a root being signed by itself
        or an issuer without one): what the authority key identifier must say."""
        ski = extension_or_none(self.cert, x509.SubjectKeyIdentifier) if self.cert else None
        return ski.value.digest if ski is not None else None

    @property
    def path_length(self):
        basic = extension_or_none(self.cert, x509.BasicConstraints) if self.cert else None
        return basic.value.path_length if basic else None

    def check_can_issue(self, profile, path_length, start, end, now):
        if self.cert is None:
            return
        if not_after(self.cert) <= now:
            raise IssuanceError('the issuer certificate expired at %s' % asn1_time(not_after(self.cert)))
        if not_before(self.cert) > now:
            raise IssuanceError('the issuer certificate is not valid before %s'
                                % asn1_time(not_before(self.cert)))
        issuer_limit = self.path_length
        if profile.is_ca and issuer_limit is not None:
            if issuer_limit == 0:
                raise IssuanceError('path length exceeded: the issuer has pathlen:0 and cannot '
                                    'sign CA certificates')
            if path_length is not None and path_length >= issuer_limit:
                raise IssuanceError('path length exceeded: path_length %d must be below the '
                                    'issuer\'s pathlen %s' % (path_length, issuer_limit))
        if profile.is_ca:
            self._check_ancestors_path_length(path_length or 0)
        if end > not_after(self.cert):
            raise IssuanceError('the certificate would be valid until %s, past the issuer\'s own '
                                'expiry %s; shorten valid_days/not_after or renew the issuer'
                                % (asn1_time(end), asn1_time(not_after(self.cert))))

    def check_name_constraints(self, profile, subject, subject_alt_name):
        """RFC 5280 4.2.1.10: the nameConstraints of the issuer and of every CA above it in its
        chain file bind the new certificate's subject and subjectAltName. OpenSSL enforces them
        (the root's included), so a certificate outside them would be issued and then fail to
        verify; it is refused before anything is written."""
        if self.cert is None:
            return
        if profile.is_ca and subject == self.cert.subject:
            return  # RFC 5280 6.1.3: a self-issued CA (key rollover) is exempt, OpenSSL agrees
        try:
            constraints = []
            for index, ca in enumerate([self.cert] + self._ancestors()):
                label = ('the issuer %s' if index == 0 else '%s in the issuer\'s chain') % name_to_string(ca.subject)
                found = NameConstraints.of_certificate(ca, label)
                if found is not None:
                    constraints.append(found)
            if not constraints:
                return
            names = certificate_names(subject, parse_general_names(subject_alt_name),
                                      end_entity=not profile.is_ca)
            check_name_constraints(names, constraints)
        except NameConstraintError as exc:
            raise IssuanceError(str(exc))

    def _ancestors(self):
        """The issuer's own issuers, nearest first, as its chain file names them (found by
        subject and signature, so the file's order does not matter)."""
        if self._ancestor_list is None:
            self._ancestor_list = self._find_ancestors()
        return self._ancestor_list

    def _find_ancestors(self):
        try:
            candidates = load_pem_certificates(self.chain_pem)
        except CertificateError:
            return []

        def signed(cert, by):
            try:
                return signature_verifies(cert, by.public_key())
            except Exception:  # pylint: disable=broad-except  # a key type cryptography cannot load
                return False

        ancestors, current = [], self.cert
        while current is not None and current.issuer != current.subject and len(ancestors) < len(candidates):
            parent = next((c for c in candidates if c.subject == current.issuer and c != current
                           and signed(current, c)), None)
            if parent is not None:
                ancestors.append(parent)
            current = parent
        return ancestors

    def _check_ancestors_path_length(self, path_length):
        """RFC 5280 6.1.4 (m): a pathlen above the issuer limits the CA certificates below it
        too. OpenSSL enforces it up to the root, so a CA certificate that one of the issuer's
        issuers does not allow would be issued, and every certificate under it fail to verify."""
        between = 0 if self.cert.issuer == self.cert.subject else 1  # CA certificates below the ancestor
        for ancestor in self._ancestors():
            basic = extension_or_none(ancestor, x509.BasicConstraints)
            limit = basic.value.path_length if basic is not None else None
            if limit is not None and limit < between + 1 + path_length:
                what = ('path length exceeded: %s in the issuer\'s chain has pathlen:%d'
                        % (name_to_string(ancestor.subject), limit))
                if limit <= between:
                    raise IssuanceError('%s, which allows no further CA certificate below the issuer %s '
                                        '(certificates under it would fail to verify): issue this CA from '
                                        'a CA higher up' % (what, name_to_string(self.cert.subject)))
                raise IssuanceError('%s: path_length %d must be below %d here'
                                    % (what, path_length, limit - between))
            if ancestor.issuer != ancestor.subject:
                between += 1


class CertificateIssuance:
    """One run of ca_cert/ocsp_signer: decide, then (unless check mode) issue and write."""

    def __init__(self, module, profile_name):
        self.module = module
        self.params = module.params
        self.profile = get_profile(profile_name)
        self.now = utcnow()
        self.result = dict(changed=False, changed_reason=None, profile=profile_name)
        self._to_write = []  # (path, bytes, mode, kind)

    # -- entry point ------------------------------------------------------------------
    def run(self):
        if IMPORT_ERROR:
            self.module.fail_json(msg=missing_required_lib('cryptography'), exception=IMPORT_ERROR)
        try:
            problem = file_attributes_problem(self.module, self.params)
            if problem is not None:
                raise IssuanceError('%s; nothing was written' % problem)
            if self.params['state'] == 'absent':
                self._absent()
            else:
                self._present_deciding_again_if_the_ca_changed()
        except (IssuanceError, CertificateError, ProfileError, keylib.PrivateKeyError, CAError) as exc:
            self.module.fail_json(msg=str(exc), **self._failure_context())
        except (IOError, OSError) as exc:  # a write failed after the checks (disk full, EACCES)
            self.module.fail_json(msg='cannot write %s: %s' % (getattr(exc, 'filename', None) or 'a file',
                                                               exc.strerror or exc),
                                  **self._failure_context())
        self.module.exit_json(**self.result)

    def _failure_context(self):
        return dict(path=self.result.get('path'))

    # -- state=absent ---------------------------------------------------------------
    def _absent(self):
        if self.profile.is_ca:
            raise IssuanceError('state=absent is refused for CA profiles: remove a CA directory '
                                'yourself, deliberately')
        path = self._require('path')
        self.result['path'] = path
        owner = ca_directory_of_own_file(path)
        if owner is not None:
            raise IssuanceError('path %s is the CA certificate file of %s: state=absent never deletes a '
                                'CA\'s own files' % (path, owner.path))
        self._check_not_archived(path)
        if not os.path.exists(path):
            return
        # Only a certificate is ever deleted: a typo in path must not cost a key or a config.
        data = read_file(path, 'file at path')
        if keylib.contains_private_key(data):
            raise IssuanceError('path %s holds a private key (a PEM PRIVATE KEY block), not only a '
                                'certificate: refusing to delete it' % path)
        try:
            load_certificate(data, path)
        except CertificateError:
            raise IssuanceError('path %s is not a certificate, refusing to delete it' % path)
        self.result.update(changed=True, changed_reason='certificate file removed')
        if self.module._diff:
            self.result['diff'] = dict(before=self._existing_summary(path) or {}, after={})
        if self.module.check_mode:
            return
        if self.params['backup']:
            self.result['backup_file'] = self.module.backup_local(path)
        os.remove(path)

    # -- state=present --------------------------------------------------------------
    def _present_deciding_again_if_the_ca_changed(self):
        for _attempt in range(CA_DECISION_ATTEMPTS):
            self.result = dict(changed=False, changed_reason=None, profile=self.profile.name)
            self._to_write = []
            try:
                return self._present()
            except _CAChanged:
                continue
        raise IssuanceError('the CA key or certificate in %s kept changing while this task ran (%d '
                            'attempts); run it again' % (self.params['ca_dir'], CA_DECISION_ATTEMPTS))

    def _ca_state(self, ca_dir):
        """What a CA run decides on: its key and certificate files as they are now."""
        return tuple(read_file(path, what) if os.path.exists(path) else None
                     for path, what in ((ca_dir.key_path, 'CA key'), (ca_dir.cert_path, 'CA certificate')))

    def _present(self):
        profile = self.profile
        params = self.params
        if profile.is_ca:
            ca_dir = CADirectory(self._require('ca_dir'))
            # Read before deciding; _write_planned compares under the CA's lock (see there).
            self._decided_on = self._ca_state(ca_dir)
            for forbidden in ('privatekey_path', 'csr_path', 'csr_content', 'path'):
                if params.get(forbidden) is not None:
                    raise IssuanceError('%s does not apply to CA profiles: the CA key and certificate '
                                        'live in ca_dir (private/ca.key.pem, certs/ca.cert.pem)'
                                        % forbidden)
            cert_path = ca_dir.cert_path
            key_path = ca_dir.key_path
            issuer_dir = params.get('issuer_dir')
            if issuer_dir and os.path.realpath(issuer_dir) == os.path.realpath(ca_dir.path):
                raise IssuanceError('ca_dir and issuer_dir are the same directory %s: a CA cannot be '
                                    'created in its issuer\'s directory (its key and certificate would '
                                    'replace the issuer\'s); give it its own ca_dir' % ca_dir.path)
        else:
            ca_dir = None
            cert_path = self._require('path')
            # a CA's certificate, chain, key, database files or newcerts/ copies
            problem = ca_file_problem(cert_path, 'certificate')
            if problem is not None:
                raise IssuanceError(problem)
            if not os.path.isdir(os.path.dirname(os.path.abspath(cert_path))):
                raise IssuanceError('directory %s for path does not exist'
                                    % os.path.dirname(os.path.abspath(cert_path)))
            key_path = params.get('privatekey_path')
            self._check_path_is_not_a_key(cert_path)
            self._check_not_archived(cert_path)
            if not (key_path or params.get('csr_path') or params.get('csr_content')):
                raise IssuanceError('one of privatekey_path, csr_path or csr_content is required '
                                    'for profile %s' % profile.name)
        self.result['path'] = cert_path
        if params.get('path_length') is not None and not profile.is_ca:
            raise IssuanceError('path_length only applies to CA profiles')

        public_key, generated_key, csr = self._subject_key(key_path)
        if generated_key is not None:
            self._to_write.append((key_path, keylib.serialize_private_key(
                generated_key, params.get('privatekey_passphrase')), 0o600, 'key'))
        subject, sans = self._subject_and_sans(csr)

        if profile.self_signed:
            if params.get('issuer_dir'):
                raise IssuanceError('issuer_dir does not apply to root_ca (it signs itself)')
            own_key = generated_key or self._loaded_key
            issuer = Issuer(subject, own_key, ca_dir=ca_dir)
        else:
            issuer = Issuer.from_directory(self._require('issuer_dir'), params.get('issuer_passphrase'))
        path_length = params.get('path_length')
        if profile.name == 'intermediate_ca' and path_length is None:
            path_length = 0  # the guide's v3_intermediate_ca: pathlen:0

        valid_days = params.get('valid_days')
        spec = CertificateSpec(
            profile, subject, public_key,
            ExtensionOptions(subject_alt_name=sans, ocsp_url=params.get('ocsp_url'),
                             ca_issuers_url=params.get('ca_issuers_url'), crl_url=params.get('crl_url'),
                             path_length=path_length),
            digest=params['digest'], valid_days=valid_days,
            not_after_time=parse_time(params['not_after']) if params.get('not_after') else None)
        spec.extensions(issuer.public_key, issuer.key_identifier)  # validates option/profile combinations early
        signing_hash(spec.digest, issuer.private_key)
        start, end = spec.validity(self.now)

        renew_before = self._renew_before_days(spec)
        existing = self._existing_certificate(cert_path)
        if params['force']:
            reason = 'force=true'
        elif existing is None:
            reason = 'no certificate at %s' % cert_path if not os.path.exists(cert_path) else \
                'the file at %s is not a certificate' % cert_path
        else:
            reason = spec.differences(existing, issuer, self.now, renew_before)
            if reason is None and not profile.self_signed:
                reason = self._revocation_reason(issuer.ca_dir, existing)

        if reason is not None:
            self._key_to_certify = (issuer, public_key, existing, key_path)
            self._check_key_not_compromised(*self._key_to_certify)
        if reason is not None and not profile.self_signed:
            # Only a certificate about to be issued must fit the issuer (a valid existing one
            # stays untouched even when the issuer now expires before a full new validity).
            issuer.check_can_issue(profile, path_length, start, end, self.now)
            issuer.check_name_constraints(profile, subject, sans)
            self._check_database_accepts(issuer.ca_dir, subject)
        elif reason is not None:
            # A root records itself in its own database: check it too (if it exists yet).
            self._check_database_accepts(ca_dir, subject, new_ca=True)
        self._check_writable(cert_path if reason is not None else None,
                             key_path if generated_key is not None else None,
                             issuer.ca_dir if reason is not None and not profile.self_signed else None)

        extra_reasons = []
        if profile.is_ca:
            self._plan_ca_files(ca_dir, spec, issuer, existing if reason is None else None,
                                extra_reasons)
        self.result['changed_reason'] = reason or ('; '.join(extra_reasons) or None)
        self.result['changed'] = bool(reason or extra_reasons)
        self.result.update(self._key_facts(key_path, public_key))

        if reason is None:
            self.result.update(self._describe(existing, issuer))
            if self.module._diff:
                self.result['diff'] = dict(before=summary(existing), after=summary(existing))
            if not self.module.check_mode:
                self._write_planned(ca_dir, None, issuer)
            self._apply_file_attributes(cert_path)
            return

        preview = spec.preview(issuer.subject, self.now)
        if self.module._diff:
            self.result['diff'] = dict(before=summary(existing) if existing else {}, after=preview)
        if self.module.check_mode:
            shown = ('subject', 'issuer', 'not_before', 'not_after', 'serial_number', 'subject_alt_name')
            self.result.update(dict((k, preview[k]) for k in shown))
            self.result.update(serial_number_hex=None, fingerprint_sha256=None, certificate=None)
            return
        cert = self._write_planned(ca_dir, spec, issuer)
        if self.module._diff:
            self.result['diff']['after'] = summary(cert)
        self.result.update(self._describe(cert, issuer))
        self._apply_file_attributes(cert_path)

    # -- pieces ---------------------------------------------------------------------
    def _require(self, name):
        value = self.params.get(name)
        if value in (None, ''):
            raise IssuanceError('%s is required for profile %s' % (name, self.profile.name))
        return value

    def _subject_key(self, key_path):
        """(public key, newly generated private key or None, csr or None)."""
        params = self.params
        self._loaded_key = None
        if key_path is None:
            if params.get('csr_content'):
                csr = load_csr(params['csr_content'], 'csr_content')
            else:
                csr = load_csr(read_file(params['csr_path'], 'CSR'), 'CSR %s' % params['csr_path'])
            return csr.public_key(), None, csr
        spec = keylib.KeySpec(params.get('privatekey_type'), params.get('privatekey_size'),
                              params.get('privatekey_curve'))
        if os.path.exists(key_path):
            key = keylib.read_private_key_file(key_path, params.get('privatekey_passphrase'),
                                               option='privatekey_passphrase')
            problem = spec.mismatch(key, params.get('privatekey_type') is not None)
            if problem:
                raise IssuanceError('the existing private key %s %s; it is never replaced '
                                    'automatically: move it away to generate a new one'
                                    % (key_path, problem))
            self._loaded_key = key
            return key.public_key(), None, None
        parent = os.path.dirname(key_path) or '.'
        if not self.profile.is_ca and not os.path.isdir(parent):
            raise IssuanceError('directory %s for privatekey_path does not exist' % parent)
        key = spec.generate(default_rsa_size=4096 if self.profile.is_ca else 2048)
        return key.public_key(), key, None

    def _subject_and_sans(self, csr):
        params = self.params
        copy = params.get('copy_from_csr') or []
        if copy and csr is None:
            raise IssuanceError('copy_from_csr needs csr_path or csr_content')
        if params.get('subject'):
            if 'subject' in copy:
                raise IssuanceError('give either subject or copy_from_csr: [subject], not both')
            subject = build_name(params['subject'])
        elif 'subject' in copy:
            subject = csr.subject
            if len(subject) == 0:
                raise IssuanceError('the CSR has an empty subject')
        else:
            raise IssuanceError('subject is required (or copy_from_csr: [subject] with a CSR)')
        sans = list(params.get('subject_alt_name') or [])
        if 'subject_alt_name' in copy:
            if sans:
                raise IssuanceError('give either subject_alt_name or copy_from_csr: '
                                    '[subject_alt_name], not both')
            ext = None
            try:
                ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            except x509.ExtensionNotFound:
                pass
            sans = general_names_to_strings(ext.value) if ext else []
        return subject, sans

    def _renew_before_days(self, spec):
        """A renewal window as long as the validity would reissue on every run: refuse it.

        The profile's default shrinks to a third of a short validity instead.
        """
        given = self.params.get('renew_before_days')
        if given is not None and given < 0:
            raise IssuanceError('renew_before_days must be 0 or more')
        if spec.not_after_time is not None:
            # No window: a reissue could only repeat the same expiry (and would on every
            # run); renewing means asking for a later not_after.
            return 0
        if given is None:
            return min(self.profile.renew_before_days, spec.valid_days // 3)
        if given >= spec.valid_days:
            raise IssuanceError('renew_before_days (%d) must be shorter than valid_days (%d), or '
                                'every run would reissue' % (given, spec.valid_days))
        return given

    def _revocation_reason(self, ca_dir, cert):
        """A certificate revoked (or on hold) in its issuer's database is no longer wanted."""
        entry = CADatabase(ca_dir).find(cert.serial_number)
        if entry is not None and entry.is_revoked:
            return 'revoked in the issuer database'
        return None

    def _check_database_accepts(self, ca_dir, subject, new_ca=False):
        """Fail now, before any write, where record_issued would refuse the certificate.

        ``new_ca``: a root's own database, which ensure_layout creates when missing (an
        index.txt.attr it creates says unique_subject = no).
        """
        db = CADatabase(ca_dir)
        if new_ca and not ca_dir.has_database():
            return
        entries = db.entries()  # also fails clearly when index.txt is missing or broken
        if new_ca and not os.path.exists(ca_dir.index_attr_path):
            return
        oneline = openssl_oneline_subject(subject)
        clash = db.unique_subject_clash(entries, oneline)
        if clash is not None:
            raise IssuanceError('%s: revoke it first (ca_revoke) or set unique_subject = no'
                                % db.unique_subject_clash_message(clash, oneline))

    def _check_key_not_compromised(self, issuer, public_key, existing, key_path):
        """Refuse to certify a key that this issuer revoked for keyCompromise/CACompromise.

        Reissuing after such a revocation (the revoked certificate no longer counts, see
        _revocation_reason) would otherwise put the compromised key straight back into service.
        The revoked certificates' keys are read from newcerts/ (or the certificate at path).
        """
        ca_dir = issuer.ca_dir
        if ca_dir is None or not ca_dir.has_database():
            return
        db = CADatabase(ca_dir)
        compromised = [entry for entry in db.entries()
                       if entry.is_revoked and entry.reason in COMPROMISE_REASONS]
        known = {}
        if existing is not None and existing.issuer == issuer.subject:
            known[existing.serial_number] = existing
        matching, _unreadable = db.entries_certifying_key(compromised, public_key, known)
        if not matching:
            return
        what = 'the key of serial %s was revoked for %s in %s' % (
            matching[0].serial_hex, matching[0].reason, ca_dir.index_path)
        if self.profile.is_ca:
            raise IssuanceError('%s: it is never certified again; a CA whose key is compromised is '
                                'replaced by a new CA: create a new CA directory (another ca_dir) with a '
                                'new key' % what)
        if key_path:
            raise IssuanceError('%s: it is never certified again; move privatekey_path %s away to '
                                'generate a new key' % (what, key_path))
        raise IssuanceError('%s: it is never certified again; the CSR is for that key: generate a new '
                            'key and CSR' % what)

    def _check_path_is_not_a_key(self, cert_path):
        """A certificate written to path must not replace a private key or the CSR it is for."""
        owner = ca_directory_of_own_key(cert_path)
        if owner is not None:
            raise IssuanceError('path %s is the private key of the CA %s; a certificate written there '
                                'would replace it: choose another path' % (cert_path, owner.path))
        problem = key_overwrite_problem(cert_path, 'certificate', [
            (option, self.params.get(option)) for option in ('privatekey_path', 'csr_path')])
        if problem is not None:
            raise IssuanceError(problem)

    @staticmethod
    def _check_not_archived(path):
        owner = ca_directory_of_archived_file(path)
        if owner is not None:
            raise IssuanceError('path %s is in %s, the archive of the certificates %s issued (openssl ca '
                                'and ca_revoke read it): give the certificate a path of its own'
                                % (path, owner.newcerts_dir, owner.path))

    def _check_writable(self, cert_path, key_path, issuer_dir):
        """Fail before signing where a write would fail after it.

        A certificate is recorded in the issuer's database before it is written to path: an
        unwritable path would leave a recorded certificate that was never delivered (one more
        on every retry).
        """
        targets = []  # (what is written, a file in the directory it goes into)
        if key_path:
            targets.append(('privatekey_path %s' % key_path, key_path))
        if cert_path:
            targets.append(('path %s' % cert_path, cert_path))
        if issuer_dir is not None:
            targets += [('the issuer database %s' % issuer_dir.index_path, issuer_dir.index_path),
                        ('the issuer\'s newcerts/', os.path.join(issuer_dir.newcerts_dir, 'new.pem'))]
        for what, target in targets:
            directory = unwritable_directory(target)
            if directory is not None:
                raise IssuanceError('cannot write %s: directory %s is not writable by this user (uid %d); '
                                    'nothing was issued' % (what, directory, os.geteuid()))

    def _existing_certificate(self, path):
        if not os.path.exists(path):
            return None
        data = read_file(path, 'existing certificate')
        try:
            return load_certificate(data, path)
        except CertificateError:
            return None

    def _existing_summary(self, path):
        cert = self._existing_certificate(path)
        return summary(cert) if cert is not None else None

    def _plan_ca_files(self, ca_dir, spec, issuer, current_cert, reasons):
        """Layout, chain and openssl.cnf of a CA directory (cert content aside)."""
        self._ca_layout_missing = ca_dir.ensure_layout(check_mode=True)
        if self._ca_layout_missing:
            reasons.append('CA directory layout created')
        self._cnf_text = ca_dir.render_openssl_cnf(**self._cnf_settings(spec))
        current_cnf = None
        if os.path.exists(ca_dir.cnf_path):
            current_cnf = read_file(ca_dir.cnf_path, 'openssl.cnf')
        if current_cnf != self._cnf_text.encode('utf-8'):
            reasons.append('openssl.cnf updated')
        if current_cert is not None:
            wanted_chain = self._chain_for(current_cert, issuer)
            current_chain = read_file(ca_dir.chain_path, 'chain') if os.path.exists(ca_dir.chain_path) else None
            if current_chain != wanted_chain:
                reasons.append('chain file updated')

    def _cnf_settings(self, spec):
        """openssl.cnf of the CA being created: openssl_cnf options, else the CA's own choices."""
        settings = dict((k, v) for k, v in (self.params.get('openssl_cnf') or {}).items() if v is not None)
        for key in ('ocsp_url', 'crl_url', 'ca_issuers_url'):
            urls = settings.get(key) or []
            for url in [urls] if isinstance(urls, str) else urls:
                check_ia5_uri(url, 'openssl_cnf.%s %r' % (key, url))
        settings.setdefault('default_md', spec.digest)
        own_limit = spec.extension_options.path_length
        # v3_intermediate_ca is for CAs this CA signs: one level shorter than its own limit,
        # and left out when its own is pathlen:0 (render_openssl_cnf).
        settings['ca_path_length'] = own_limit
        settings['path_length'] = 0 if own_limit is None else max(own_limit - 1, 0)
        return settings

    def _chain_for(self, cert, issuer):
        if self.profile.self_signed:
            return cert_pem(cert)
        return cert_pem(cert) + issuer.chain_pem

    def _write_planned(self, ca_dir, spec, issuer):
        """Write the key, sign and record (if spec), then the certificate and CA files.

        A CA's files are written under its own database lock, after checking that its key and
        certificate are still what the decision was based on. Without that, forks creating
        the same CA at once each generated a key and minted a root, later ones replacing the
        key and certificate that earlier ones had already returned.
        """
        if ca_dir is None:
            return self._write_files(None, spec, issuer, None)
        ca_dir.ensure_layout()
        own_db = CADatabase(ca_dir)
        with own_db.locked():
            if self._ca_state(ca_dir) != self._decided_on:
                raise _CAChanged()
            return self._write_files(ca_dir, spec, issuer, own_db)

    def _write_files(self, ca_dir, spec, issuer, own_db):
        cert = None
        for path, data, mode, _kind in self._to_write:
            atomic_write(path, data, mode)
        if spec is not None:
            # a root signs in its own database: the same CADatabase, whose lock is re-entrant
            db = own_db if self.profile.self_signed else CADatabase(issuer.ca_dir)
            builder = spec.builder(issuer.subject, issuer.public_key, self.now, issuer.key_identifier)
            with db.locked():
                # Again under the lock: a revocation of this key for compromise may have been
                # recorded since the check that decided to issue.
                self._check_key_not_compromised(*self._key_to_certify)
                serial = db.allocate_serial(self.params['serial_policy'])
                cert = builder.serial_number(serial).sign(
                    private_key=issuer.private_key,
                    algorithm=signing_hash(spec.digest, issuer.private_key))
                db.record_issued(cert)
            path = self.result['path']
            if self.params['backup'] and os.path.exists(path):
                self.result['backup_file'] = self.module.backup_local(path)
            # mode None: a replaced certificate keeps its mode (0644 for a new one), as Ansible's
            # own modules keep it; the mode option is applied afterwards
            atomic_write(path, cert_pem(cert), None)
        if ca_dir is not None:
            current = cert or self._existing_certificate(ca_dir.cert_path)
            chain = self._chain_for(current, issuer)
            existing_chain = read_file(ca_dir.chain_path, 'chain') if os.path.exists(ca_dir.chain_path) else None
            if existing_chain != chain:
                atomic_write(ca_dir.chain_path, chain, 0o644)
            ca_dir.write_openssl_cnf(self._cnf_text)
        return cert

    def _describe(self, cert, issuer):
        info = summary(cert)
        shown = ('serial_number', 'serial_number_hex', 'subject', 'issuer', 'not_before', 'not_after',
                 'fingerprint_sha256', 'subject_alt_name')
        described = dict((k, info[k]) for k in shown)
        described['certificate'] = cert_pem(cert).decode('ascii')
        if self.profile.is_ca:
            ca_dir = CADirectory(self.params['ca_dir'])
            described.update(ca_dir=ca_dir.path, chain_path=ca_dir.chain_path,
                             privatekey_path=ca_dir.key_path)
            described['chain'] = self._chain_for(cert, issuer).decode('ascii')
        else:
            described['chain'] = issuer.chain_pem.decode('ascii')
        return described

    def _key_facts(self, key_path, public_key):
        facts = dict(public_key_fingerprint=keylib.public_key_fingerprint(public_key))
        if key_path and not self.profile.is_ca:
            facts['privatekey_path'] = key_path
        return facts

    def _apply_file_attributes(self, path):
        if not os.path.exists(path):
            return
        file_args = self.module.load_file_common_arguments(self.params, path=path)
        self.result['changed'] = self.module.set_fs_attributes_if_different(
            file_args, self.result['changed'])
