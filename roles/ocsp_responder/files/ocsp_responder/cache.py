"""Pre-signed responses, one per (issuer, CertID) - the CertID bytes carry the hash
algorithm and the serial, and a response must echo them exactly.

An entry remembers the status tuple it was signed from. A hit is served only while the
issuer's current table still holds an equal status, thisUpdate has come and nextUpdate has
not, so a reload can never leak a stale answer even before the background re-signing
catches up, and nothing past its nextUpdate is ever served."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Dict, Hashable, Iterator, List, Optional, Tuple

# Seconds before nextUpdate at which an entry is no longer served: a client whose
# clock is a little ahead must not receive an answer that is expired on arrival.
EXPIRY_GUARD = 5.0

CacheKey = Tuple[int, bytes]  # (issuer index, CertID DER)


@dataclass(frozen=True)
class SignedResponse:
    der: bytes
    serial: int
    status: Hashable          # the status tuple it was signed from (None: not in the index)
    this_update: float        # POSIX seconds
    next_update: float
    etag: str
    last_modified: str        # HTTP-date of thisUpdate
    expires: str              # HTTP-date of nextUpdate
    signer: object = field(default=None, compare=False)  # the Signer that signed it (rotation check)
    # [the HTTP forms of this answer for the current second]: made and kept by the HTTP
    # front (http.http_forms) once per second, not per request.
    http_forms: list = field(default_factory=lambda: [None], compare=False, repr=False)

    @classmethod
    def create(cls, der: bytes, serial: int, status: Hashable, this_update: float,
               next_update: float, signer: object = None) -> "SignedResponse":
        return cls(der, serial, status, this_update, next_update,
                   '"' + hashlib.sha256(der).hexdigest() + '"',  # RFC 9919 §7.2 recommends SHA-256
                   formatdate(this_update, usegmt=True), formatdate(next_update, usegmt=True), signer)

    def servable(self, now: float) -> bool:
        # Not before its thisUpdate either: after the clock was set back (a VM booted
        # ahead, then corrected) clients refuse such an answer as not yet valid.
        return self.this_update <= now < self.next_update - EXPIRY_GUARD


class ResponseCache:
    """Insertion-ordered dict with a size bound; the oldest signed entries go first."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._entries: Dict[CacheKey, SignedResponse] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey, current_status: Hashable, now: float) -> Optional[SignedResponse]:
        entry = self._entries.get(key)
        if entry is None or entry.status != current_status or not entry.servable(now):
            return None
        return entry

    def put(self, key: CacheKey, entry: SignedResponse) -> None:
        if self.max_entries <= 0:
            return
        # Re-inserting moves the key to the end: refreshed entries are the youngest.
        self._entries.pop(key, None)
        while len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = entry

    def full(self) -> bool:
        return len(self._entries) >= self.max_entries

    def contains(self, key: CacheKey) -> bool:
        return key in self._entries

    def due_for_refresh(self, now: float, margin: float) -> List[Tuple[CacheKey, SignedResponse]]:
        """Near their nextUpdate, or not yet valid (the clock was set back)."""
        return [(key, entry) for key, entry in self._entries.items()
                if entry.next_update - now < margin or entry.this_update > now]

    def entries_of(self, issuer_index: int) -> List[Tuple[CacheKey, SignedResponse]]:
        return [(key, entry) for key, entry in list(self._entries.items()) if key[0] == issuer_index]

    def keys(self) -> Iterator[CacheKey]:
        return iter(list(self._entries))
