# Copyright (c) pkiops.ocsp contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A CA directory that ``openssl ca`` can use too (layout, openssl.cnf, CA key and cert).

Layout (the OpenSSL CA guide's, with fixed file names)::

    DIR/index.txt  index.txt.attr  serial  crlnumber  openssl.cnf
    DIR/newcerts/<SERIAL>.pem   certs/ca.cert.pem   certs/ca-chain.cert.pem
    DIR/crl/  csr/  private/ (0700)  private/ca.key.pem (0600)
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import traceback

from ansible_collections.pkiops.ocsp.plugins.module_utils.fileops import atomic_write

try:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError:  # reported by the modules through missing_required_lib
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()


class CAError(Exception):
    """A failure the user can act on; the message says what is wrong and where."""


INDEX_ATTR_DEFAULT = "unique_subject = no\n"
SERIAL_DEFAULT = "1000\n"
CRLNUMBER_DEFAULT = "1000\n"

DIR_MODE = 0o755
PRIVATE_DIR_MODE = 0o700
PUBLIC_FILE_MODE = 0o644


def _read_bytes(path, what):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise CAError("%s not found: %s" % (what, path))
    except OSError as exc:
        raise CAError("cannot read %s %s: %s" % (what, path, exc.strerror or exc))


def load_pem_certificates(data, source):
    """All certificates of a PEM bundle, in file order (works on cryptography 38)."""
    marker_begin = b"-----BEGIN CERTIFICATE-----"
    marker_end = b"-----END CERTIFICATE-----"
    certs = []
    start = data.find(marker_begin)
    while start != -1:
        end = data.find(marker_end, start)
        if end == -1:
            raise CAError("%s: truncated PEM certificate" % source)
        end += len(marker_end)
        try:
            certs.append(x509.load_pem_x509_certificate(data[start:end]))
        except ValueError as exc:
            raise CAError("%s: invalid PEM certificate (%s)" % (source, exc))
        start = data.find(marker_begin, end)
    return certs


def load_certificate_bytes(data, source):
    """One certificate, PEM or DER."""
    if b"-----BEGIN" in data:
        certs = load_pem_certificates(data, source)
        if not certs:
            raise CAError("%s: no PEM certificate found" % source)
        return certs[0]
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise CAError("%s: neither a PEM nor a DER certificate (%s)" % (source, exc))


def _cnf_value(value):
    """Escape a value for an OpenSSL config file ($ expands, # starts a comment)."""
    text = str(value)
    if "\n" in text or "\r" in text:
        raise CAError("openssl.cnf value must be one line: %r" % text)
    out = []
    for char in text:
        if char in "\\$#\"'":
            out.append("\\")
        out.append(char)
    return "".join(out)


def _uri_list(kind, urls):
    items = []
    for url in urls:
        if "," in url or not url.strip():
            raise CAError("%s URL %r is empty or contains a comma, which openssl.cnf cannot carry" % (kind, url))
        items.append(url.strip())
    return items


def _ca_directory_holding(path, subdir, names, other_file):
    """The CADirectory in which ``path`` (symlinks resolved) is ``subdir``/one of ``names``,
    if that directory is a CA's (its database, or its file ``other_file``: an attribute
    name such as "key_path"), else None."""
    parent, name = os.path.split(os.path.realpath(path))
    if name not in names or os.path.basename(parent) != subdir:
        return None
    ca_dir = CADirectory(os.path.dirname(parent))
    return ca_dir if ca_dir.has_database() or os.path.isfile(getattr(ca_dir, other_file)) else None


def ca_directory_of_own_file(path):
    """The CADirectory whose own certificate or chain file ``path`` is (symlinks resolved), else None.

    Such a file is the CA's identity: a certificate issued into it replaces the CA.
    """
    return _ca_directory_holding(path, "certs", ("ca.cert.pem", "ca-chain.cert.pem"), "key_path")


def ca_directory_of_archived_file(path):
    """The CADirectory whose archive of issued certificates (newcerts/) holds ``path``
    (its directory's symlinks resolved; a link at ``path`` itself is replaced or removed,
    not followed), else None: openssl ca and ca_revoke read those copies."""
    archive = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    if os.path.basename(archive) != "newcerts":
        return None
    ca_dir = CADirectory(os.path.dirname(archive))
    return ca_dir if ca_dir.has_database() else None


def ca_directory_of_own_key(path):
    """The CADirectory whose private key file ``path`` is (symlinks resolved), else None."""
    return _ca_directory_holding(path, "private", ("ca.key.pem",), "cert_path")


# The files at the top of a CA directory that hold its state: the database and its
# attributes, the serial and CRL number counters, the copies `openssl ca` keeps of them
# (.old), our lock file and the generated openssl.cnf.
DATABASE_FILES = ("index.txt", "index.txt.attr", "index.txt.old", "index.txt.attr.old",
                  "index.txt.lock", "serial", "serial.old", "crlnumber", "crlnumber.old",
                  "openssl.cnf")


def ca_directory_of_database_file(path):
    """The CADirectory whose database, serial, CRL number, openssl.cnf or CRL file ``path``
    is (symlinks resolved), else None: a certificate or CSR written there would wipe the
    records of every certificate the CA issued or revoked (or its counters)."""
    parent, name = os.path.split(os.path.realpath(path))
    if name in DATABASE_FILES:
        ca_dir = CADirectory(parent)
        return ca_dir if ca_dir.has_database() or os.path.isfile(ca_dir.key_path) else None
    return _ca_directory_holding(path, "crl", ("ca.crl.pem",), "key_path")


def ca_file_problem(path, written):
    """Why writing ``written`` (a certificate, a CSR) to ``path`` would replace a file of a CA
    directory (its certificate, chain, key, database files or an archived copy in newcerts/),
    else None. Symlinks are resolved as the checks above do."""
    owner = ca_directory_of_own_file(path)
    if owner is not None:
        return ("path %s is the CA certificate file of %s; a %s written there would replace that CA's "
                "own: choose another path" % (path, owner.path, written))
    owner = ca_directory_of_own_key(path)
    if owner is not None:
        return ("path %s is the private key of the CA %s; a %s written there would replace it: choose "
                "another path" % (path, owner.path, written))
    owner = ca_directory_of_database_file(path)
    if owner is not None:
        return ("path %s is a database file of the CA %s (index.txt, serial, crlnumber, openssl.cnf or its "
                "CRL); a %s written there would destroy the CA's records: choose another path"
                % (path, owner.path, written))
    owner = ca_directory_of_archived_file(path)
    if owner is not None:
        return ("path %s is in %s, the archive of the certificates %s issued (openssl ca and ca_revoke "
                "read it): give the %s a path of its own" % (path, owner.newcerts_dir, owner.path, written))
    return None


class CADirectory:
    """Paths of a CA directory plus the operations that only touch its files."""

    def __init__(self, path):
        self.path = os.path.abspath(os.fspath(path))
        join = os.path.join
        self.index_path = join(self.path, "index.txt")
        self.index_attr_path = join(self.path, "index.txt.attr")
        self.serial_path = join(self.path, "serial")
        self.crlnumber_path = join(self.path, "crlnumber")
        self.cnf_path = join(self.path, "openssl.cnf")
        self.lock_path = join(self.path, "index.txt.lock")
        self.newcerts_dir = join(self.path, "newcerts")
        self.certs_dir = join(self.path, "certs")
        self.crl_dir = join(self.path, "crl")
        self.csr_dir = join(self.path, "csr")
        self.private_dir = join(self.path, "private")
        self.key_path = join(self.private_dir, "ca.key.pem")
        self.cert_path = join(self.certs_dir, "ca.cert.pem")
        self.chain_path = join(self.certs_dir, "ca-chain.cert.pem")
        self.crl_path = join(self.crl_dir, "ca.crl.pem")

    def __repr__(self):
        return "CADirectory(%r)" % self.path

    def exists(self):
        """True when this is a usable CA: it has a database and a CA certificate."""
        return os.path.isfile(self.index_path) and os.path.isfile(self.cert_path)

    def has_database(self):
        return os.path.isfile(self.index_path)

    def require_database(self):
        if not os.path.isdir(self.path):
            raise CAError("CA directory %s does not exist" % self.path)
        if not self.has_database():
            raise CAError("%s is not a CA directory: %s is missing" % (self.path, self.index_path))

    # -- layout -----------------------------------------------------------------------
    def layout_plan(self):
        """(path, kind, mode, content) for everything the layout needs, parents first."""
        return [
            (self.path, "dir", DIR_MODE, None),
            (self.certs_dir, "dir", DIR_MODE, None),
            (self.crl_dir, "dir", DIR_MODE, None),
            (self.csr_dir, "dir", DIR_MODE, None),
            (self.newcerts_dir, "dir", DIR_MODE, None),
            (self.private_dir, "dir", PRIVATE_DIR_MODE, None),
            (self.index_path, "file", PUBLIC_FILE_MODE, ""),
            (self.index_attr_path, "file", PUBLIC_FILE_MODE, INDEX_ATTR_DEFAULT),
            (self.serial_path, "file", PUBLIC_FILE_MODE, SERIAL_DEFAULT),
            (self.crlnumber_path, "file", PUBLIC_FILE_MODE, CRLNUMBER_DEFAULT),
        ]

    def ensure_layout(self, check_mode=False):
        """Create what is missing; never touch what exists. Returns the created paths."""
        parent = os.path.dirname(self.path)
        if not os.path.lexists(self.path) and not os.path.isdir(parent):
            # Checked in check mode too, so that it predicts the failure. Like community.crypto's
            # modules we do not create missing parents: a typo would grow a directory tree.
            raise CAError("cannot create the CA directory %s: its parent directory %s does not exist "
                          "(create it first, for example with ansible.builtin.file)" % (self.path, parent))
        created = []
        for path, kind, mode, content in self.layout_plan():
            if os.path.lexists(path):
                if kind == "dir" and not os.path.isdir(path):
                    raise CAError("%s exists but is not a directory" % path)
                if kind == "file" and not os.path.isfile(path):
                    raise CAError("%s exists but is not a regular file" % path)
                continue
            created.append(path)
            if check_mode:
                continue
            try:
                if kind == "dir":
                    os.mkdir(path, mode)
                    os.chmod(path, mode)  # mkdir honours the umask
                else:
                    # O_EXCL: a concurrent fork creating the same CA must not truncate our file
                    try:
                        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
                    except FileExistsError:
                        created.pop()
                        continue
                    with os.fdopen(fd, "w") as handle:
                        handle.write(content)
                        handle.flush()
                        os.fsync(handle.fileno())
                    os.chmod(path, mode)
            except FileExistsError:
                created.pop()
            except OSError as exc:
                raise CAError("cannot create %s: %s" % (path, exc.strerror or exc))
        return created

    # -- openssl.cnf --------------------------------------------------------------------
    def render_openssl_cnf(self, default_md="sha256", default_days=375, default_crl_days=30,
                           policy="policy_loose", ocsp_url=None, crl_url=None, ca_issuers_url=None,
                           serial_policy="random", path_length=0, unique_subject=False,
                           ca_path_length=None):
        """An openssl.cnf with which ``openssl ca`` works on this directory unchanged.

        Section names follow the OpenSSL CA guide, so the guide's commands
        (``-extensions server_cert``, ``-extensions ocsp``, ``-gencrl``, ``-revoke``) apply.

        ``path_length`` is the pathlen ``v3_intermediate_ca`` gives the CAs this CA signs (None:
        none). ``ca_path_length`` is this CA's own pathLenConstraint (None: unlimited): the
        offered pathlen is at most one below it, and with pathlen:0 there is no
        ``v3_intermediate_ca`` at all (a comment says why), because a CA this CA signed could
        not issue a certificate that verifies.
        """
        if policy not in ("policy_strict", "policy_loose"):
            raise CAError("policy must be policy_strict or policy_loose, not %r" % policy)
        ocsp_urls = _uri_list("OCSP", [ocsp_url] if isinstance(ocsp_url, str) else (ocsp_url or []))
        issuer_urls = _uri_list("caIssuers", [ca_issuers_url] if isinstance(ca_issuers_url, str)
                                else (ca_issuers_url or []))
        crl_urls = _uri_list("CRL", [crl_url] if isinstance(crl_url, str) else (crl_url or []))
        leaf_extra = []
        aia = ["OCSP;URI:%s" % u for u in ocsp_urls] + ["caIssuers;URI:%s" % u for u in issuer_urls]
        if aia:
            leaf_extra.append("authorityInfoAccess = %s" % _cnf_value(", ".join(aia)))
        if crl_urls:
            leaf_extra.append("crlDistributionPoints = %s" % _cnf_value(", ".join("URI:%s" % u for u in crl_urls)))
        leaf_extra = "".join(line + "\n" for line in leaf_extra)
        # OpenSSL 3 issues random serials whenever the key is present, whatever its value
        # ("rand_serial = no" included), so the sequential policy must leave it out.
        rand_serial = "rand_serial       = yes\n" if serial_policy == "random" else ""
        if ca_path_length is not None and int(ca_path_length) <= 0:
            intermediate_ca = NO_INTERMEDIATE_CA_SECTION
        else:
            if ca_path_length is not None and (path_length is None or int(path_length) > int(ca_path_length) - 1):
                path_length = int(ca_path_length) - 1
            if path_length is not None and int(path_length) < 0:
                raise CAError("path_length must be 0 or more, not %r" % path_length)
            intermediate_ca = INTERMEDIATE_CA_SECTION.format(
                pathlen="" if path_length is None else ", pathlen:%d" % int(path_length))
        return CNF_TEMPLATE.format(
            dir=_cnf_value(self.path), default_md=_cnf_value(default_md),
            default_days=int(default_days), default_crl_days=int(default_crl_days), policy=policy,
            rand_serial=rand_serial, leaf_extra=leaf_extra, intermediate_ca=intermediate_ca,
            unique_subject="yes" if unique_subject else "no",
        )

    def write_openssl_cnf(self, text, check_mode=False):
        """Write openssl.cnf if its content differs. Returns whether it changed."""
        data = text.encode("utf-8")
        try:
            with open(self.cnf_path, "rb") as handle:
                if handle.read() == data:
                    return False
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise CAError("cannot read %s: %s" % (self.cnf_path, exc.strerror or exc))
        if not check_mode:
            try:
                atomic_write(self.cnf_path, data, PUBLIC_FILE_MODE)
            except OSError as exc:
                raise CAError("cannot write %s: %s" % (self.cnf_path, exc.strerror or exc))
        return True

    # -- CA material --------------------------------------------------------------------
    def load_certificate(self):
        return load_certificate_bytes(_read_bytes(self.cert_path, "CA certificate"), self.cert_path)

    def load_chain(self):
        """The chain file's certificates (this CA first, root last)."""
        certs = load_pem_certificates(_read_bytes(self.chain_path, "CA chain"), self.chain_path)
        if not certs:
            raise CAError("%s contains no PEM certificate" % self.chain_path)
        return certs

    def load_private_key(self, passphrase=None):
        data = _read_bytes(self.key_path, "CA private key")
        if isinstance(passphrase, str):
            passphrase = passphrase.encode("utf-8")
        if passphrase == b"":
            passphrase = None
        try:
            return load_pem_private_key(data, password=passphrase)
        except TypeError as exc:
            if "not encrypted" in str(exc):
                raise CAError("a passphrase was given but the CA key %s is not encrypted" % self.key_path)
            raise CAError("the CA key %s is encrypted: give its passphrase" % self.key_path)
        except ValueError as exc:
            if b"ENCRYPTED" in data:
                raise CAError("cannot decrypt the CA key %s: wrong passphrase?" % self.key_path)
            raise CAError("%s is not a readable PEM private key (%s)" % (self.key_path, exc))


INTERMEDIATE_CA_SECTION = """\
[ v3_intermediate_ca ]
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always,issuer
basicConstraints       = critical, CA:true{pathlen}
keyUsage               = critical, digitalSignature, cRLSign, keyCertSign
"""

# What stands where v3_intermediate_ca would be when the CA's own certificate has pathlen:0.
NO_INTERMEDIATE_CA_SECTION = """\
# [ v3_intermediate_ca ] is left out: this CA's certificate has pathlen:0, so a CA
# certificate it signed, and every certificate under that one, would fail verification
# ("path length constraint exceeded"). Issue further CAs from a CA higher up. (v3_ca is
# for self-signed certificates, `openssl req -x509`, not for `openssl ca` here.)
"""

CNF_TEMPLATE = """\
# Generated by pkiops.ocsp. `openssl ca -config {dir}/openssl.cnf ...` works on this
# directory: -revoke, -gencrl, -status and issuing from a CSR with the sections below.
# Edits are overwritten when the CA is managed again.

[ ca ]
default_ca        = CA_default

[ CA_default ]
dir               = {dir}
certs             = $dir/certs
crl_dir           = $dir/crl
new_certs_dir     = $dir/newcerts
database          = $dir/index.txt
serial            = $dir/serial
crlnumber         = $dir/crlnumber
private_key       = $dir/private/ca.key.pem
certificate       = $dir/certs/ca.cert.pem
crl               = $dir/crl/ca.crl.pem
crl_extensions    = crl_ext
default_crl_days  = {default_crl_days}
default_md        = {default_md}
name_opt          = ca_default
cert_opt          = ca_default
default_days      = {default_days}
preserve          = no
unique_subject    = {unique_subject}
{rand_serial}copy_extensions   = none
policy            = {policy}

[ policy_strict ]
countryName             = match
stateOrProvinceName     = match
organizationName        = match
organizationalUnitName  = optional
commonName              = supplied
emailAddress            = optional

[ policy_loose ]
countryName             = optional
stateOrProvinceName     = optional
localityName            = optional
organizationName        = optional
organizationalUnitName  = optional
commonName              = supplied
emailAddress            = optional

[ req ]
default_bits        = 2048
distinguished_name  = req_distinguished_name
string_mask         = utf8only
default_md          = {default_md}
x509_extensions     = v3_ca

[ req_distinguished_name ]
countryName                     = Country Name (2 letter code)
stateOrProvinceName             = State or Province Name
localityName                    = Locality Name
0.organizationName              = Organization Name
organizationalUnitName          = Organizational Unit Name
commonName                      = Common Name
emailAddress                    = Email Address

[ v3_ca ]
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always,issuer
basicConstraints       = critical, CA:true
keyUsage               = critical, digitalSignature, cRLSign, keyCertSign

{intermediate_ca}
[ usr_cert ]
basicConstraints       = CA:FALSE
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid,issuer
keyUsage               = critical, nonRepudiation, digitalSignature, keyEncipherment
extendedKeyUsage       = clientAuth, emailProtection
{leaf_extra}
[ server_cert ]
basicConstraints       = CA:FALSE
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid,issuer:always
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = serverAuth
{leaf_extra}
[ crl_ext ]
authorityKeyIdentifier = keyid:always

[ ocsp ]
basicConstraints       = CA:FALSE
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid,issuer
keyUsage               = critical, digitalSignature
extendedKeyUsage       = critical, OCSPSigning
noCheck                = ignored
"""
