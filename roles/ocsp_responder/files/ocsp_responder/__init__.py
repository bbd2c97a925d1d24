"""pkiops.ocsp responder: a production OCSP responder (RFC 6960, RFC 9919, RFC 9654)
serving the status recorded in OpenSSL ``index.txt`` files.

Data flow: config -> status_source -> responses (signer, cache, protocol) -> http ->
metrics -> __main__."""

__version__ = "1.0.0"
