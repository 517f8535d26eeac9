"""Derived data kept between runs, so that start-up does not rebuild it.

Two things are worth keeping: the parser's tables (read off Lark's LALR parser for
grammar/kql.lark, see ``kql.language.tables``) and the registry's parsed TOML. Each is one
``marshal`` file stamped with what it was derived from (the source text itself, the Python and
kql versions), and is used only when the stamp matches, the way Python checks a ``.pyc``.

Where: ``$KQL_CACHE_DIR`` if set; else ``kql/__pycache__`` next to the sources (where Python
keeps kql's byte-code); else, when kql's folder is read-only or Python is told not to write
byte-code (PYTHONDONTWRITEBYTECODE, ``-B``), the user's cache directory.

Best effort throughout: a missing, stale, truncated or unwritable cache means rebuilding from
the source, never an error. (marshal, like a ``.pyc``, trusts the files of the user's own
cache: they are as trusted as the byte-code next to them.)
"""

from __future__ import annotations

import contextlib
import marshal
import os
import sys

from kql._version import __version__

ENV = "KQL_CACHE_DIR"
# Bumped when the layout of a cache file changes. 2: one (stamp, marshalled value) pair.
FORMAT = 2


def _file_name(name: str) -> str:
    return f"kql-{name}.{sys.implementation.cache_tag}.marshal"


# (os.path, not pathlib: this runs on every start, and pathlib's import costs more than the rest.)
def _beside_sources() -> str:
    return os.path.join(os.path.dirname(__file__), "__pycache__")


def _user_dir() -> str:
    import platformdirs  # only when kql's own folder is read-only: it costs start-up time

    return platformdirs.user_cache_dir("kql")


def _writable(folder: str) -> bool:
    return os.access(folder if os.path.isdir(folder) else os.path.dirname(folder), os.W_OK)


def _places() -> list[str]:
    chosen = os.environ.get(ENV)
    if chosen:
        return [chosen]
    beside = _beside_sources()
    # PYTHONDONTWRITEBYTECODE (or -B) asks for nothing to be written beside the sources.
    return [beside] if _writable(beside) and not sys.dont_write_bytecode else [_user_dir()]


def _stamp(parts: tuple[object, ...]) -> tuple[object, ...]:
    return (FORMAT, sys.version, __version__, *parts)


def load(name: str, parts: tuple[object, ...]) -> object | None:
    """The value stored under ``name`` for these ``parts`` (its sources), or None."""
    stamp = _stamp(parts)
    for place in _places():
        found = _read(os.path.join(place, _file_name(name)), stamp)
        if found is not None:
            return found
    return None


def _read(path: str, stamp: tuple[object, ...]) -> object | None:
    try:
        with open(path, "rb") as file:
            data = file.read()
        # The stamp is compared before the value is decoded. (marshal.loads on the bytes, not
        # marshal.load on the file: that calls the file's readinto for every object it reads,
        # twenty times the cost of the parser's tables.)
        found, value = marshal.loads(data)
        if found != stamp:
            return None
        kept: object = marshal.loads(value)
        return kept
    except (OSError, EOFError, ValueError, TypeError):  # TypeError: not a (stamp, bytes) pair
        return None


def store(name: str, parts: tuple[object, ...], value: object) -> bool:
    """Keep ``value`` for the next run; False when no place could take it (nothing is raised)."""
    stamp = _stamp(parts)
    return any(_write(place, _file_name(name), stamp, value) for place in _places())


def _write(place: str, file_name: str, stamp: tuple[object, ...], value: object) -> bool:
    temporary = os.path.join(place, f".{file_name}.{os.getpid()}.tmp")
    try:
        os.makedirs(place, exist_ok=True)
        data = marshal.dumps((stamp, marshal.dumps(value)))  # type: ignore[arg-type]  # checked by marshal: ValueError
        with open(temporary, "wb") as file:
            file.write(data)
        os.replace(temporary, os.path.join(place, file_name))  # readers see the old file or the new
        return True
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        return False
