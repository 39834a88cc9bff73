"""SHA-256 without ``hashlib``'s start-up: importing it loads OpenSSL, about 3 ms of a command's life, for one digest
of a path or a key.  CPython's own implementation gives the same digest (a test holds them equal)."""

from __future__ import annotations

try:
    from _sha256 import sha256  # type: ignore[import-not-found]  # CPython 3.11
except ImportError:  # pragma: no cover - CPython 3.12 and later name it _sha2; another Python has hashlib alone
    try:
        from _sha2 import sha256  # type: ignore[import-not-found, no-redef]
    except ImportError:
        from hashlib import sha256  # type: ignore[assignment]


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` in hex."""
    return sha256(data).hexdigest()
