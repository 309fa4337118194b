"""Make untrusted text (transcripts, device names, anything from the wire) safe to print on a terminal or in a log.

A transcript is whatever a microphone heard and a device name whatever a USB descriptor says; either may carry
ESC sequences that recolour, retitle or rewrite a terminal, newlines that forge log lines, or bidi overrides that
reorder what is shown. Every character Python does not consider printable is shown as a visible escape instead.
"""

from __future__ import annotations


def terminal_safe(text: str, limit: int | None = None) -> str:
    """`text` with every non-printable character (C0/C1 controls incl. ESC, DEL, newlines, tabs, bidi and other
    format characters, surrogates, unassigned code points) replaced by `\\xNN`, `\\uNNNN` or `\\UNNNNNNNN`; a
    backslash is doubled so an escape cannot be forged. Cut to `limit` characters (ending in "…") if given."""
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_escape(ch) for ch in text)


def _escape(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    if ch.isprintable():
        return ch
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
