"""Folder names from labels: the one function every path made from a loss's label or a clip's
name goes through.

A label is whatever the user wrote (``perceptual:taps=256``, ``my_loss.py:MyLoss:tag=../x``,
``mse#2``); a folder name must stay one path component, inside its parent, on every filesystem
pal writes. :func:`folder_name` percent-encodes, as RFC 3986 does, every byte of the label's UTF-8
outside :data:`SAFE` (``%`` itself too) and a leading dot, so the name is

- **safe**: no ``/``, no NUL, never ``.`` or ``..`` nor hidden, nothing a shell or a URL treats
  specially but ``%``, which the page's links encode again (:func:`link`);
- **unique and reversible**: :func:`label_of` gives the label back, so two labels never share a
  folder;
- **unchanged where it already was safe**: a label made only of :data:`SAFE` characters, not
  starting with a dot, is its own folder name, as every folder pal wrote before this was.

>>> folder_name("masked+perceptual"), folder_name("perceptual:taps=256")
('masked+perceptual', 'perceptual:taps=256')
>>> folder_name("a/../b c"), folder_name(".."), folder_name("100%#")
('a%2F..%2Fb%20c', '%2E.', '100%25%23')
>>> label_of(folder_name("d\u00e9j\u00e0 vu/?"))
'déjà vu/?'
"""

from __future__ import annotations

import re
import string
from urllib.parse import quote

from .errors import UserError

# Characters a folder name keeps as they are: letters, digits and the punctuation pal's own
# labels hold (``masked+perceptual``, ``mel-mrstft``, ``file.py:Name:key=value``), so folders
# written before names were encoded read back unchanged.
SAFE = frozenset(string.ascii_letters + string.digits + "._-+=:")
MAX_NAME_BYTES = 255  # NAME_MAX of Linux filesystems and macOS's APFS: one path component
_ENCODED = re.compile(r"%([0-9A-F]{2})")


class UnsafeName(UserError, ValueError):
    """A label that cannot become a folder name: empty, or too long once encoded (one line)."""


def folder_name(label: str) -> str:
    """The folder name of ``label``: itself when it is safe, else percent-encoded (see the module)."""
    if not isinstance(label, str) or not label:
        raise UnsafeName(f"{label!r} cannot name a folder (empty)")
    encoded = "".join(
        character if character in SAFE and not (index == 0 and character == ".")
        else "".join(f"%{byte:02X}" for byte in character.encode("utf-8", "surrogatepass"))
        for index, character in enumerate(label))
    if len(encoded) > MAX_NAME_BYTES:
        raise UnsafeName(f"{label[:40]!r}... is too long to name a folder ({len(encoded)} bytes once encoded, "
                         f"at most {MAX_NAME_BYTES})")
    return encoded


def label_of(name: str) -> str:
    """The label whose :func:`folder_name` is ``name``."""
    data = bytearray()
    position = 0
    for match in _ENCODED.finditer(name):
        data += name[position:match.start()].encode("ascii")
        data.append(int(match.group(1), 16))
        position = match.end()
    data += name[position:].encode("ascii")
    return data.decode("utf-8", "surrogatepass")


def check_label(label: str, what: str) -> None:
    """Raise :class:`UnsafeName` naming ``what`` (``loss``, ``clip``) when ``label`` cannot name a folder."""
    try:
        folder_name(label)
    except UnsafeName as error:
        raise UnsafeName(f"{what} {error}") from None


def link(relative_posix_path: str) -> str:
    """A relative path as a page links it: every byte a URL gives a meaning (``#``, ``?``, ``%``,
    a space, ``:``) percent-encoded, ``/`` kept, so the browser opens exactly that file."""
    return quote(relative_posix_path, safe="/")
