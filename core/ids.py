"""ULID identifiers: sortable by creation time, safe in file names."""

import os
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid() -> str:
    """Return a new 26-character ULID (48-bit millisecond time, 80 random bits, Crockford base32).

    Returns:
        The identifier; two ids made in different milliseconds sort by time.
    """
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))
