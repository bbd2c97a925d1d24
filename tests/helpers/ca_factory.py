"""Build CA directories for tests: with our module_utils + cryptography, or with the real
openssl CLI only (the independent party)."""
from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_COLLECTIONS = str(ROOT / ".cache" / "collections")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from ansible_collections.pkiops.ocsp.plugins.module_utils.ca_db import CADatabase  # noqa: E402
from ansible_collections.pkiops.ocsp.plugins.module_utils.ca_dir import CADirectory  # noqa: E402
from ansible_collections.pkiops.ocsp.plugins.module_utils.fileops import atomic_write  # noqa: E402
from tests.helpers.openssl_conf import ca_conf  # noqa: E402

UTC = datetime.timezone.utc


def openssl(*args, cwd=None, check=True, input=None) -> subprocess.CompletedProcess:
    proc = subprocess.run(["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          input=input, timeout=60, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"openssl {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def name(cn: str, org: str = "Alice Ltd") -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "GB"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


class ApiCA:
    """A CA directory written with our API; issues certificates through CADatabase."""

    def __init__(self, path: Path, cn: str = "Test Root CA", org: str = "Alice Ltd",
                 serial_policy: str = "random", **cnf):
        self.dir = CADirectory(path)
        self.dir.ensure_layout()
        self.dir.write_openssl_cnf(self.dir.render_openssl_cnf(serial_policy=serial_policy, **cnf))
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = name(cn, org)
        now = datetime.datetime.now(UTC)
        self.ski = x509.SubjectKeyIdentifier.from_public_key(self.key.public_key())
        self.cert = (
            x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(self.ski, critical=False)
            .sign(self.key, hashes.SHA256())
        )
        atomic_write(self.dir.key_path, self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), 0o600)
        pem = self.cert.public_bytes(serialization.Encoding.PEM)
        atomic_write(self.dir.cert_path, pem)
        atomic_write(self.dir.chain_path, pem)
        self.db = CADatabase(self.dir)

    @property
    def path(self) -> Path:
        return Path(self.dir.path)

    def build(self, subject: x509.Name, serial: int, days: int = 375) -> x509.Certificate:
        now = datetime.datetime.now(UTC).replace(microsecond=0)
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        return (
            x509.CertificateBuilder().subject_name(subject).issuer_name(self.name)
            .public_key(leaf_key.public_key()).serial_number(serial)
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(self.ski), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def issue(self, cn: str, days: int = 375, policy: str = "random", db: CADatabase | None = None):
        """B's usage pattern: allocate, sign and record under one lock."""
        db = db or self.db
        with db.locked():
            serial = db.allocate_serial(policy)
            cert = self.build(name(cn), serial, days)
            db.record_issued(cert)
        return cert

    def write_cert(self, cert: x509.Certificate, path: Path) -> Path:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path


class OpensslCA:
    """A CA directory made with nothing but the openssl CLI, in the issue's layout."""

    def __init__(self, path: Path, cn: str = "OpenSSL Made CA"):
        self.path = path
        for sub in ("certs", "crl", "newcerts", "private", "csr"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        (path / "private").chmod(0o700)
        (path / "index.txt").write_text("")
        (path / "serial").write_text("1000\n")
        (path / "crlnumber").write_text("1000\n")
        self.cnf = path / "openssl.cnf"
        self.cnf.write_text(ca_conf(path, default_days=30, default_crl_days=7, unique_subject=True,
                                    policy="policy_any",
                                    policy_fields=("commonName", "organizationName", "countryName"),
                                    extensions={"v3_ca": "bare_ca", "leaf": "bare_leaf"}))
        self.key = path / "private" / "ca.key.pem"
        self.cert = path / "certs" / "ca.cert.pem"
        openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", self.key, "-out", self.cert, "-subj", f"/C=GB/O=Alice Ltd/CN={cn}",
                "-days", "3650", "-config", self.cnf, "-extensions", "v3_ca")

    def issue(self, subj: str, *extra) -> Path:
        """openssl req + openssl ca -batch; returns the certificate path."""
        stem = subj.rsplit("=", 1)[-1].replace(" ", "_")
        key = self.path / "private" / f"{stem}.key.pem"
        csr = self.path / "csr" / f"{stem}.csr.pem"
        out = self.path / "certs" / f"{stem}.cert.pem"
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", csr, "-subj", subj, "-config", self.cnf)
        openssl("ca", "-batch", "-notext", "-config", self.cnf, "-extensions", "leaf", "-in", csr,
                "-out", out, *extra)
        return out

    def ca(self, *args, check=True) -> subprocess.CompletedProcess:
        return openssl("ca", "-config", self.cnf, *args, check=check)

    def serial_of(self, cert: Path) -> int:
        return int(openssl("x509", "-in", cert, "-noout", "-serial").stdout.strip().split("=")[1], 16)


def openssl_status(cnf: Path, serial_hex: str) -> str:
    """`openssl ca -status`: prints 'SERIAL=Valid (V)' / '=Revoked (R)' on stderr."""
    proc = openssl("ca", "-config", cnf, "-status", serial_hex, check=False)
    return proc.stdout + proc.stderr


def crl_serials(cnf: Path, out: Path, passphrase: str | None = None) -> dict[int, str]:
    """Generate a CRL with `openssl ca -gencrl`; return {serial: reason text or ''}."""
    openssl("ca", "-config", cnf, "-gencrl", "-out", out,
            *(["-passin", f"pass:{passphrase}"] if passphrase is not None else []))
    text = openssl("crl", "-in", out, "-noout", "-text").stdout
    revoked: dict[int, str] = {}
    current = None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("Serial Number:"):
            current = int(stripped.split(":", 1)[1].strip(), 16)
            revoked[current] = ""
        elif current is not None and stripped == "X509v3 CRL Reason Code:":
            revoked[current] = lines[i + 1].strip()
    return revoked
