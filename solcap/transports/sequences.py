"""Key sequences written the way operators write them: ``^\\``, ``^Ec.``, ``\\e(``, ``\\r~.``.

Why a notation: a console's leave sequence or a BMC's start command has to travel through a
URL query, an inventory field and ``--help`` text, where raw control bytes cannot. Vendor
manuals write Ctrl-\\ as ``^\\`` and conserver's escape as ``^Ec.``, so caret notation is
accepted, plus the C-style escapes people paste from shell scripts.

    ^X        control character (``^@`` … ``^_``, ``^?`` = DEL, ``^[`` = Esc)
    \\e \\r \\n \\t \\\\ \\^   Esc, CR, LF, tab, backslash, a literal caret
    \\xHH      any byte
"""

from __future__ import annotations

from solcap.errors import UsageError

__all__ = ["parse_sequence", "show_sequence"]

_ESCAPES = {"e": b"\x1b", "r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\", "^": b"^"}


def parse_sequence(text: str, what: str = "key sequence") -> bytes:
    """``text`` in caret/backslash notation → bytes; a malformed escape is a UsageError."""
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "^":
            if i + 1 >= len(text):
                raise UsageError(f"{what} {text!r}: '^' at the end (write \\^ for a caret)")
            nxt = text[i + 1]
            if nxt == "?":
                out.append(0x7F)
            elif "@" <= nxt.upper() <= "_":
                out.append(ord(nxt.upper()) - 0x40)
            else:
                raise UsageError(f"{what} {text!r}: ^{nxt} is not a control character")
            i += 2
        elif ch == "\\":
            if i + 1 >= len(text):
                raise UsageError(f"{what} {text!r}: '\\' at the end (write \\\\ for one)")
            nxt = text[i + 1]
            if nxt == "x":
                digits = text[i + 2 : i + 4]
                try:
                    if len(digits) != 2:
                        raise ValueError(digits)
                    out.append(int(digits, 16))
                except ValueError:
                    raise UsageError(f"{what} {text!r}: \\x needs two hex digits") from None
                i += 4
                continue
            if nxt not in _ESCAPES:
                raise UsageError(f"{what} {text!r}: unknown escape \\{nxt}")
            out += _ESCAPES[nxt]
            i += 2
        else:
            out += ch.encode("utf-8")
            i += 1
    return bytes(out)


def show_sequence(data: bytes) -> str:
    """Bytes → caret notation for messages (the inverse of :func:`parse_sequence`)."""
    parts = []
    for byte in data:
        if byte == 0x7F:
            parts.append("^?")
        elif byte < 0x20:
            parts.append("^" + chr(byte + 0x40))
        elif byte == ord("^"):
            parts.append("\\^")
        elif byte == ord("\\"):
            parts.append("\\\\")
        elif byte < 0x7F:
            parts.append(chr(byte))
        else:
            parts.append(f"\\x{byte:02x}")
    return "".join(parts)
