# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The csr module's logic: a key that stays on its host and a CSR for it."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.pkiops.ocsp.plugins.module_utils import keys as keylib
from ansible_collections.pkiops.ocsp.plugins.module_utils.certs import (
    CertificateError, build_name, key_overwrite_problem, name_to_string, read_file, signing_hash)
from ansible_collections.pkiops.ocsp.plugins.module_utils.profiles import (
    ProfileError, general_names_to_strings, parse_general_names)

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from ansible_collections.pkiops.ocsp.plugins.module_utils.ca_dir import ca_file_problem
    from ansible_collections.pkiops.ocsp.plugins.module_utils.fileops import (
        atomic_write, file_attributes_problem, unwritable_directory)
    IMPORT_ERROR = None
except ImportError:
    IMPORT_ERROR = traceback.format_exc()


class CsrError(Exception):
    pass


def csr_summary(csr):
    try:
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = []
    return {
        'subject': name_to_string(csr.subject),
        'subject_alt_name': general_names_to_strings(sans),
        'public_key': keylib.describe_key(csr.public_key()),
        'public_key_fingerprint': keylib.public_key_fingerprint(csr.public_key()),
    }


def _holds(path, data):
    """Whether the file at ``path`` has exactly ``data``."""
    try:
        with open(path, 'rb') as handle:
            return handle.read() == data
    except (IOError, OSError):
        return False


class CsrRequest:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.result = dict(changed=False, changed_reason=None)

    def run(self):
        if IMPORT_ERROR:
            self.module.fail_json(msg=missing_required_lib('cryptography'), exception=IMPORT_ERROR)
        try:
            self._run()
        except (CsrError, CertificateError, ProfileError, keylib.PrivateKeyError) as exc:
            self.module.fail_json(msg=str(exc))
        except (IOError, OSError) as exc:  # a write failed after the checks (disk full, EACCES)
            self.module.fail_json(msg='cannot write %s: %s' % (getattr(exc, 'filename', None) or 'a file',
                                                               exc.strerror or exc))
        self.module.exit_json(**self.result)

    def _run(self):
        params = self.params
        key_path = params['privatekey_path']
        csr_path = params.get('path')
        subject = build_name(params['subject'])
        sans = parse_general_names(params.get('subject_alt_name') or [])
        self.result.update(privatekey_path=key_path, path=csr_path,
                           subject=name_to_string(subject),
                           subject_alt_name=general_names_to_strings(sans))
        spec = keylib.KeySpec(params.get('privatekey_type'), params.get('privatekey_size'),
                              params.get('privatekey_curve'))
        reasons = []
        problem = file_attributes_problem(self.module, params)
        if problem is not None:  # checked before the key is generated, not after
            raise CsrError('%s; nothing was written' % problem)
        if csr_path and not os.path.isdir(os.path.dirname(os.path.abspath(csr_path))):
            raise CsrError('directory of path %s does not exist' % csr_path)
        problem = csr_path and (ca_file_problem(csr_path, 'CSR') or
                                key_overwrite_problem(csr_path, 'CSR', [('privatekey_path', key_path)]))
        if problem:
            raise CsrError(problem)
        if os.path.exists(key_path):
            key = keylib.read_private_key_file(key_path, params.get('privatekey_passphrase'),
                                               option='privatekey_passphrase')
            problem = spec.mismatch(key, params.get('privatekey_type') is not None)
            if problem:
                raise CsrError('the existing private key %s %s; it is never replaced automatically: '
                               'move it away to generate a new one' % (key_path, problem))
            new_key = None
        else:
            parent = os.path.dirname(key_path) or '.'
            if not os.path.isdir(parent):
                raise CsrError('directory %s for privatekey_path does not exist' % parent)
            key = new_key = spec.generate()
            reasons.append('private key generated')
        signing_hash(params['digest'], key)  # validates the digest before anything is written

        existing = self._existing_csr(csr_path)
        if csr_path:
            if existing is None:
                reasons.append('no CSR at %s' % csr_path if not os.path.exists(csr_path)
                               else 'the file at %s is not a valid CSR' % csr_path)
            else:
                why = self._differs(existing, key, subject, sans)
                if why:
                    reasons.append(why)
        if params['force'] and csr_path and not reasons:  # without path there is nothing to rewrite
            reasons.append('force=true')

        wanted = {
            'subject': name_to_string(subject),
            'subject_alt_name': general_names_to_strings(sans),
            'public_key': keylib.describe_key(key),
            'public_key_fingerprint': keylib.public_key_fingerprint(key),
        }
        self.result['public_key_fingerprint'] = wanted['public_key_fingerprint']
        self.result['changed'] = bool(reasons)
        self.result['changed_reason'] = '; '.join(reasons) or None
        if self.module._diff:
            before = csr_summary(existing) if existing is not None else {}
            self.result['diff'] = dict(before=before, after=wanted)

        write_csr = bool(csr_path) and (existing is None or bool(reasons))
        # Both directories are checked before the key is written (check mode predicts it): a run
        # that cannot write the CSR must not leave a new key behind.
        targets = [('privatekey_path %s' % key_path, key_path)] if new_key is not None else []
        if write_csr:
            targets.append(('path %s' % csr_path, csr_path))
        self._check_writable(targets)
        if csr_path and existing is not None and not reasons:
            csr_pem = read_file(csr_path, 'CSR')
        elif self.module.check_mode:
            # Nothing is written; a CSR for a key that does not exist yet cannot be shown.
            csr_pem = None if new_key is not None else self._build(key, subject, sans)
        else:
            csr_pem = self._build(key, subject, sans)
            if new_key is not None:
                atomic_write(key_path, keylib.serialize_private_key(
                    new_key, params.get('privatekey_passphrase')), 0o600)
            if write_csr:
                try:
                    if params['backup'] and os.path.exists(csr_path):
                        self.result['backup_file'] = self.module.backup_local(csr_path)
                    atomic_write(csr_path, csr_pem, None)  # a replaced CSR keeps its mode (0644 when new)
                except BaseException:
                    # A write failing after the checks (disk full) leaves nothing of this run
                    # behind: not its backup, and not its new key unless the CSR is in place.
                    leftovers = [self.result.pop('backup_file', None)]
                    if new_key is not None and not _holds(csr_path, csr_pem):
                        leftovers.append(key_path)
                    for leftover in filter(None, leftovers):
                        try:
                            os.unlink(leftover)
                        except OSError:
                            pass
                    raise
        self.result['csr'] = csr_pem.decode('ascii') if csr_pem else None
        if csr_path and os.path.exists(csr_path):
            file_args = self.module.load_file_common_arguments(params, path=csr_path)
            self.result['changed'] = self.module.set_fs_attributes_if_different(
                file_args, self.result['changed'])

    @staticmethod
    def _check_writable(targets):
        """Fail before the first write where a write would fail (permissions, a read-only or
        immutable directory): ``targets`` are (what, path) pairs."""
        for what, target in targets:
            directory = unwritable_directory(target)
            if directory is not None:
                raise CsrError('cannot write %s: directory %s is not writable by this user (uid %d); '
                               'nothing was written' % (what, directory, os.geteuid()))

    def _existing_csr(self, path):
        if not path or not os.path.exists(path):
            return None
        data = read_file(path, 'CSR')
        try:
            csr = x509.load_pem_x509_csr(data)
        except ValueError:
            return None
        return csr if csr.is_signature_valid else None

    def _differs(self, csr, key, subject, sans):
        if keylib.public_key_der(csr.public_key()) != keylib.public_key_der(key):
            return 'CSR public key differs from the private key'
        if csr.subject != subject:
            return 'subject differs'
        try:
            present = list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            present = []
        if present != list(sans):
            return 'subject_alt_name differs'
        if len(csr.extensions) != (1 if sans else 0):
            return 'CSR carries other extensions'
        return None

    def _build(self, key, subject, sans):
        builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        csr = builder.sign(key, signing_hash(self.params['digest'], key))
        return csr.public_bytes(serialization.Encoding.PEM)
