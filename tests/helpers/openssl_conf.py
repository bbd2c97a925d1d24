"""The openssl.cnf of the CAs tests make with the openssl CLI alone.

Those CAs are the independent party the collection is checked against, so this is
written here on purpose and owes nothing to the collection's own openssl.cnf renderer
(plugins/module_utils/ca_dir.py): do not import it from there, nor the other way round.

Users: tests/helpers/ca_factory.py (OpensslCA), tests/responder/interop_support.py
(build_openssl_pki; also imported by benchmarks/run.py) and tests/responder/conftest.py
(CaDir). Each picks the extension sections it issues with (``openssl ca -extensions NAME``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Optional, Union

# Extension sections, each in the order openssl adds its lines to a certificate.
# "{ocsp_url}" stands for the responder URL a section puts in authorityInfoAccess.
EXTENSIONS = {
    # tests/responder/conftest.py: the OpenSSL CA guide's sections
    "v3_ca": """\
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always,issuer
basicConstraints = critical, CA:true
keyUsage = critical, digitalSignature, cRLSign, keyCertSign
""",
    "v3_intermediate_ca": """\
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always,issuer
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, digitalSignature, cRLSign, keyCertSign
""",
    "server_cert": """\
basicConstraints = CA:FALSE
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer:always
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
authorityInfoAccess = OCSP;URI:{ocsp_url}
""",
    "ocsp": """\
basicConstraints = CA:FALSE
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, OCSPSigning
noCheck = ignored
""",
    "ocsp_without_eku": """\
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
""",
    # tests/responder/interop_support.py: leaves both kinds of client accept
    "leaf_ext": """\
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
authorityInfoAccess = OCSP;URI:{ocsp_url}
""",
    "ocsp_ext": """\
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, OCSPSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
noCheck = ignored
""",
    # tests/helpers/ca_factory.py (OpensslCA): the least a CA and its leaves need
    "bare_ca": """\
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
""",
    "bare_leaf": """\
basicConstraints = CA:false
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
""",
}


def ca_conf(ca_dir: Union[str, Path], *, default_days: int,
            extensions: Union[Iterable[str], Mapping[str, str]],
            certificate: str = "certs/ca.cert.pem", private_key: str = "private/ca.key.pem",
            policy: str = "policy_loose",
            policy_fields: Iterable[str] = ("countryName", "organizationName", "commonName"),
            unique_subject: bool = False, default_crl_days: Optional[int] = None,
            ocsp_url: Optional[str] = None) -> str:
    """An openssl.cnf for ``openssl ca`` (and ``openssl req -config``) on the CA in ``ca_dir``.

    - ``ca_dir``: the CA directory as openssl.cnf says it (``.`` to run ``openssl ca`` from
      inside the directory, so that a copy of it works where it lands).
    - ``certificate``, ``private_key``: the CA's certificate and key, relative to ``ca_dir``.
    - ``policy_fields``: the subject fields ``openssl ca`` keeps, in the order it writes
      them (commonName supplied, the others optional); ``policy`` names the section.
    - ``unique_subject``: refuse a second valid certificate with the same subject.
    - ``default_crl_days``: given, ``openssl ca -gencrl`` works (with a crlnumber file).
    - ``extensions``: names from EXTENSIONS, each written as a section of that name; or
      ``{section name: EXTENSIONS name}`` to write one under another name.
    - ``ocsp_url``: the authorityInfoAccess OCSP URI of the sections that carry one.
    """
    if not isinstance(extensions, Mapping):
        extensions = {name: name for name in extensions}
    ca_default = [
        ("dir", ca_dir),
        ("database", "$dir/index.txt"),
        ("new_certs_dir", "$dir/newcerts"),
        ("serial", "$dir/serial"),
        ("certificate", f"$dir/{certificate}"),
        ("private_key", f"$dir/{private_key}"),
        ("default_md", "sha256"),
        ("default_days", default_days),
        ("policy", policy),
        ("unique_subject", "yes" if unique_subject else "no"),
        ("copy_extensions", "none"),
    ]
    if default_crl_days is not None:
        ca_default += [("crlnumber", "$dir/crlnumber"), ("default_crl_days", default_crl_days)]
    sections = [
        ("ca", "default_ca = CA_default\n"),
        ("CA_default", "".join(f"{key} = {value}\n" for key, value in ca_default)),
        (policy, "".join(f"{field} = {'supplied' if field == 'commonName' else 'optional'}\n"
                         for field in policy_fields)),
        ("req", "distinguished_name = req_distinguished_name\nprompt = no\n"),
        ("req_distinguished_name", "CN = placeholder\n"),  # every `openssl req` here passes -subj
    ]
    for section, name in extensions.items():
        body = EXTENSIONS[name]
        if "{ocsp_url}" in body and not ocsp_url:
            raise ValueError(f"extension section {name} needs an ocsp_url")
        sections.append((section, body.replace("{ocsp_url}", ocsp_url or "")))
    return "\n".join(f"[ {section} ]\n{body}" for section, body in sections)
