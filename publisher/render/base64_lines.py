"""Base64 as a MIME body holds it: lines of at most 76 characters (RFC 2045), each ended.

One helper for every place a message's HTML part is encoded (`message`,
`letters`, `letter_parts`): the message they build must be byte for byte the
same whichever way it was made, so the line length and line end are set here once.
"""

from __future__ import annotations

import binascii

LINE = 76


def base64_lines(data: bytes, eol: bytes = b"\r\n") -> bytes:
    """`data` in base64, cut into lines of `LINE` characters (the last may be shorter), each ended by `eol`.

    Empty data gives no line at all (b""), not an empty one.
    """
    flat = binascii.b2a_base64(data, newline=False)
    if not flat:
        return b""
    return eol.join([flat[start : start + LINE] for start in range(0, len(flat), LINE)]) + eol
