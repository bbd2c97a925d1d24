"""CA directory layout, openssl.cnf rendering and CA material loading (module_utils/ca_dir.py)."""
from __future__ import annotations

import os
import re
import stat

import pytest
from cryptography.hazmat.primitives import serialization

from tests.helpers.ca_factory import ApiCA, openssl

from ansible_collections.pkiops.ocsp.plugins.module_utils.ca_dir import CADirectory, CAError, ca_directory_of_own_file
from ansible_collections.pkiops.ocsp.plugins.module_utils.fileops import atomic_write


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_layout_created_with_modes_and_openssl_defaults(tmp_path):
    ca_dir = CADirectory(tmp_path / "ca")
    planned = ca_dir.ensure_layout(check_mode=True)
    assert not os.path.exists(ca_dir.path)  # check mode creates nothing
    old_umask = os.umask(0o077)
    try:
        created = ca_dir.ensure_layout()
    finally:
        os.umask(old_umask)
    assert created == planned
    assert set(created) >= {ca_dir.index_path, ca_dir.private_dir, ca_dir.newcerts_dir, ca_dir.serial_path}
    assert mode(ca_dir.private_dir) == 0o700
    assert mode(ca_dir.newcerts_dir) == 0o755 and mode(ca_dir.index_path) == 0o644
    assert open(ca_dir.index_path).read() == ""
    assert open(ca_dir.index_attr_path).read() == "unique_subject = no\n"
    assert open(ca_dir.serial_path).read() == "1000\n"
    assert open(ca_dir.crlnumber_path).read() == "1000\n"
    assert not ca_dir.exists()  # no CA certificate yet
    assert ca_dir.ensure_layout() == []


def test_layout_never_touches_existing_content(tmp_path):
    ca_dir = CADirectory(tmp_path / "ca")
    os.makedirs(ca_dir.path)
    with open(ca_dir.serial_path, "w") as handle:
        handle.write("ABCD\n")
    os.mkdir(ca_dir.private_dir, 0o750)
    created = ca_dir.ensure_layout()
    assert ca_dir.serial_path not in created and ca_dir.private_dir not in created
    assert open(ca_dir.serial_path).read() == "ABCD\n"


def test_layout_refuses_a_file_where_a_directory_belongs(tmp_path):
    ca_dir = CADirectory(tmp_path / "ca")
    os.makedirs(ca_dir.path)
    open(ca_dir.newcerts_dir, "w").close()
    with pytest.raises(CAError, match="newcerts exists but is not a directory"):
        ca_dir.ensure_layout()


@pytest.mark.parametrize("check_mode", [True, False])
def test_layout_needs_the_parent_directory_in_check_mode_too(tmp_path, check_mode):
    ca_dir = CADirectory(tmp_path / "missing" / "ca")
    with pytest.raises(CAError, match="its parent directory %s does not exist" % (tmp_path / "missing")):
        ca_dir.ensure_layout(check_mode=check_mode)
    assert not (tmp_path / "missing").exists()


def test_rendered_cnf_sections_and_urls(tmp_path):
    ca_dir = CADirectory(tmp_path / "ca")
    text = ca_dir.render_openssl_cnf(ocsp_url=["http://ocsp1.example.com", "http://ocsp2.example.com"],
                                     crl_url="http://crl.example.com/ca.crl",
                                     ca_issuers_url="http://pki.example.com/ca.cer", serial_policy="sequential")
    for section in ("CA_default", "policy_strict", "policy_loose", "req", "v3_ca", "v3_intermediate_ca",
                    "usr_cert", "server_cert", "ocsp", "crl_ext"):
        assert "[ %s ]" % section in text
    assert text.count("authorityInfoAccess = OCSP;URI:http://ocsp1.example.com, "
                      "OCSP;URI:http://ocsp2.example.com, caIssuers;URI:http://pki.example.com/ca.cer") == 2
    assert text.count("crlDistributionPoints = URI:http://crl.example.com/ca.crl") == 2
    assert "rand_serial" not in text  # OpenSSL 3 takes the key's presence as "yes"
    assert "rand_serial       = yes\n" in ca_dir.render_openssl_cnf(serial_policy="random")
    with pytest.raises(CAError, match="comma"):
        ca_dir.render_openssl_cnf(ocsp_url=["http://a,b"])
    with pytest.raises(CAError, match="policy_strict or policy_loose"):
        ca_dir.render_openssl_cnf(policy="policy_any")


INTERMEDIATE_SECTION = re.compile(r"^\[ v3_intermediate_ca \]$", re.M)


def test_v3_intermediate_ca_fits_the_cas_own_path_length(tmp_path):
    """A CA with pathlen:0 offered v3_intermediate_ca: `openssl ca -extensions
    v3_intermediate_ca` issued a CA under which no certificate verifies."""
    ca_dir = CADirectory(tmp_path / "ca")
    unlimited = ca_dir.render_openssl_cnf()  # a root without pathlen: the guide's pathlen:0
    assert "basicConstraints       = critical, CA:true, pathlen:0\n" in unlimited
    assert ca_dir.render_openssl_cnf(path_length=None).count("critical, CA:true\n") == 2  # v3_ca and this one
    leaf_ca = ca_dir.render_openssl_cnf(ca_path_length=0)
    assert not INTERMEDIATE_SECTION.search(leaf_ca)
    assert "# [ v3_intermediate_ca ] is left out: this CA's certificate has pathlen:0" in leaf_ca
    assert "pathlen:" not in leaf_ca.replace("has pathlen:0", "")
    for asked, own, offered in ((5, 2, 1), (None, 3, 2), (0, 3, 0), (1, 3, 1), (0, None, 0)):
        text = ca_dir.render_openssl_cnf(path_length=asked, ca_path_length=own)
        assert INTERMEDIATE_SECTION.search(text) and "CA:true, pathlen:%d\n" % offered in text, (asked, own)
    with pytest.raises(CAError, match="0 or more"):
        ca_dir.render_openssl_cnf(path_length=-1)
    # same inputs, same bytes: a regenerated CA reports no change
    assert ca_dir.render_openssl_cnf(ca_path_length=0) == leaf_ca


def test_cnf_with_awkward_directory_name_is_read_by_openssl(tmp_path):
    """`$` and `#` in the path must not be expanded or start a comment in openssl.cnf."""
    ca = ApiCA(tmp_path / "my ca $HOME #1", ocsp_url=["http://ocsp.example.com"])
    out = openssl("ca", "-config", ca.dir.cnf_path, "-gencrl", "-out", tmp_path / "crl.pem")
    assert out.returncode == 0
    assert "Alice Ltd" in openssl("crl", "-in", tmp_path / "crl.pem", "-noout", "-issuer").stdout


def test_write_openssl_cnf_reports_change_and_honours_check_mode(tmp_path):
    ca_dir = CADirectory(tmp_path / "ca")
    ca_dir.ensure_layout()
    text = ca_dir.render_openssl_cnf()
    assert ca_dir.write_openssl_cnf(text, check_mode=True) is True
    assert not os.path.exists(ca_dir.cnf_path)
    assert ca_dir.write_openssl_cnf(text) is True
    assert ca_dir.write_openssl_cnf(text) is False
    assert ca_dir.write_openssl_cnf(text + "# x\n") is True


def test_load_ca_material_and_clear_errors(tmp_path):
    ca = ApiCA(tmp_path / "ca")
    assert ca.dir.exists()
    assert ca.dir.load_certificate() == ca.cert
    assert ca.dir.load_chain() == [ca.cert]
    assert ca.dir.load_private_key().private_numbers() == ca.key.private_numbers()
    with pytest.raises(CAError, match="not encrypted"):
        ca.dir.load_private_key("secret")
    encrypted = ca.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.BestAvailableEncryption(b"right"))
    atomic_write(ca.dir.key_path, encrypted, 0o600)
    assert ca.dir.load_private_key("right").private_numbers() == ca.key.private_numbers()
    with pytest.raises(CAError, match="wrong passphrase"):
        ca.dir.load_private_key("wrong")
    with pytest.raises(CAError, match="is encrypted: give its passphrase"):
        ca.dir.load_private_key()
    atomic_write(ca.dir.cert_path, b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(CAError, match="invalid PEM certificate"):
        ca.dir.load_certificate()
    atomic_write(ca.dir.cert_path, b"\x30\x03garbage")
    with pytest.raises(CAError, match="neither a PEM nor a DER"):
        ca.dir.load_certificate()
    os.unlink(ca.dir.chain_path)
    with pytest.raises(CAError, match="CA chain not found"):
        ca.dir.load_chain()
    os.unlink(ca.dir.key_path)
    with pytest.raises(CAError, match="CA private key not found"):
        ca.dir.load_private_key()


def test_a_ca_directorys_own_certificate_files_are_recognised(tmp_path):
    ca = ApiCA(tmp_path / "ca")
    os.symlink(ca.dir.cert_path, tmp_path / "link.pem")
    for path in (ca.dir.cert_path, ca.dir.chain_path, tmp_path / "link.pem"):
        assert ca_directory_of_own_file(path).path == ca.dir.path
    os.makedirs(tmp_path / "plain" / "certs")  # not a CA directory: no index.txt, no CA key
    for path in (tmp_path / "plain" / "certs" / "ca.cert.pem", os.path.join(ca.dir.certs_dir, "www.pem")):
        assert ca_directory_of_own_file(path) is None
