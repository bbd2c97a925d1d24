# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exit 0 when the OCSP responder at URL signs with the certificate in SIGNER_CERT.

    python3 ocsp_signer_in_service.py URL ISSUER_CERT SIGNER_CERT

Asks the responder about the signer certificate itself (any serial would do), compares
the certificate embedded in the answer with SIGNER_CERT and checks that the answer is
signed by that certificate's key (a new certificate served with the old key would fail
every client). Used by site.yml and rotate_signer.yml (tasks/deploy_responder.yml) on the
responder host, with the responder's virtualenv python (cryptography is there)."""
import sys
import urllib.error
import urllib.request

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp


def read_certificate(path):
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read())


def signed_by(certificate, signature, data, hash_algorithm):
    key = certificate.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hash_algorithm))
        else:  # Ed25519, Ed448: no separate hash
            key.verify(signature, data)
    except (InvalidSignature, TypeError, ValueError):
        return False
    return True


def main(url, issuer_path, signer_path):
    issuer, signer = read_certificate(issuer_path), read_certificate(signer_path)
    request = ocsp.OCSPRequestBuilder().add_certificate(signer, issuer, hashes.SHA1()).build()
    http_request = urllib.request.Request(
        url, data=request.public_bytes(serialization.Encoding.DER),
        headers={"Content-Type": "application/ocsp-request"})
    try:
        with urllib.request.urlopen(http_request, timeout=10) as reply:
            body = reply.read()
    except (urllib.error.URLError, OSError) as exc:
        print("no answer from %s: %s" % (url, exc))
        return 1
    response = ocsp.load_der_ocsp_response(body)
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        print("responder answered %s" % response.response_status.name)
        return 1
    if not response.certificates:
        print("the answer carries no signer certificate")
        return 1
    served = response.certificates[0]
    if served.fingerprint(hashes.SHA256()) != signer.fingerprint(hashes.SHA256()):
        print("signer in service: serial %X; expected %X" % (served.serial_number, signer.serial_number))
        return 1
    if not signed_by(served, response.signature, response.tbs_response_bytes, response.signature_hash_algorithm):
        print("signer certificate %X in service, but the answer is not signed by its key" % served.serial_number)
        return 1
    print("signer in service: serial %X" % served.serial_number)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
