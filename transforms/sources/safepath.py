"""Map a remote name to a safe relative path inside the landing area.

Remote names are data chosen by whoever uploaded the file. Used as paths they
could escape the landing area (``../../etc``, ``/abs``, ``C:\\x``), hide
(control characters, NUL), break the file system (255-byte component limit,
``.``/``..``, names reserved on Windows shares) or collide after
normalisation. :func:`safe_relpath` keeps the folder structure where it is
harmless and replaces anything else; when it had to change a name it appends a
short hash of the *original* remote path so two different remote names never
map to the same landing file. The original name is kept in the pull report
and the sync state, never on disk.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import PurePosixPath

MAX_COMPONENT_BYTES = 180  # well under NAME_MAX (255) to leave room for temp prefixes
MAX_DEPTH = 24
MAX_TOTAL_BYTES = 1024

_BAD_CHARS = re.compile(r'[\x00-\x1f\x7f<>:"|?*\\]')
_WINDOWS_RESERVED = {
    "CON", "PRN", "AUX", "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}  # fmt: skip
TEMP_PREFIX = ".sta-part-"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def _clean_component(comp: str) -> str:
    comp = unicodedata.normalize("NFC", comp)
    # Lone surrogates (undecodable bytes), invisible format characters (e.g. the
    # right-to-left override that makes "gpj.exe" read "exe.jpg") and line/paragraph
    # separators become '_'.
    comp = "".join("_" if unicodedata.category(ch) in ("Cs", "Cf", "Zl", "Zp") else ch for ch in comp)
    comp = _BAD_CHARS.sub("_", comp)
    comp = comp.strip(" ")
    comp = comp.rstrip(".")  # Windows drops trailing dots: 'a.' and 'a' would collide
    if comp in ("", ".", ".."):
        return "_"
    if comp.startswith(TEMP_PREFIX):  # never look like one of our temp files
        comp = "_" + comp
    stem = comp.split(".", 1)[0].upper()
    if stem in _WINDOWS_RESERVED:
        comp = "_" + comp
    return comp


def _tag_fit(comp: str, tag: str) -> str:
    """Append ``~tag`` before the extension, shortening the stem to fit the limit."""
    stem, dot, ext = comp.rpartition(".")
    if not dot or not stem or len(ext.encode("utf-8")) > 16:
        stem, ext = comp, ""
    suffix = f"~{tag}" + (f".{ext}" if ext else "")
    room = MAX_COMPONENT_BYTES - len(suffix.encode("utf-8"))
    return _truncate_utf8(stem, room) + suffix


def safe_relpath(remote_path: str) -> str:
    """A relative POSIX path that is safe under any landing folder.

    Deterministic (same remote path -> same result across runs) so a file
    changed at the source replaces its own earlier landing copy. A name that
    had to change gets ``~<hash of the original path>`` so that, e.g.,
    ``a:b`` and ``a_b`` never land on the same file.
    """
    parts = [p for p in re.split(r"[/\\]+", remote_path) if p]
    cleaned = [_clean_component(p) for p in parts] or ["_"]
    if len(cleaned) > MAX_DEPTH:
        cleaned = cleaned[: MAX_DEPTH - 1] + ["_".join(cleaned[MAX_DEPTH - 1 :])]
    # Over-long folder names: shortened by a hash of themselves (stable per folder).
    cleaned = [
        c if len(c.encode("utf-8")) <= MAX_COMPONENT_BYTES or i == len(cleaned) - 1
        else _tag_fit(c, _short_hash(c))
        for i, c in enumerate(cleaned)
    ]
    if "/".join(cleaned) != remote_path or len(cleaned[-1].encode("utf-8")) > MAX_COMPONENT_BYTES:
        cleaned[-1] = _tag_fit(cleaned[-1], _short_hash(remote_path))
    rel = "/".join(cleaned)
    if len(rel.encode("utf-8")) > MAX_TOTAL_BYTES:
        rel = "_long/" + _tag_fit(cleaned[-1], _short_hash(remote_path))
    # Belt and braces: the result must be a plain relative path.
    pp = PurePosixPath(rel)
    if pp.is_absolute() or ".." in pp.parts or "\x00" in rel or not rel:
        raise ValueError(f"unsafe landing path computed for {remote_path!r}")
    return rel
