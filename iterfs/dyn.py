"""Dynamic entries: names providers answer at lookup time (process directories, passthrough).

The static tree (IterFS.replace) holds the catalog. Anything else is asked of providers in
order, by relative path; an answer is an Entry. Dynamic inodes live while the kernel holds
a lookup on them: each lookup reply (and each readdirplus entry the kernel takes) counts
one, forget() counts down, and at zero the inode is dropped, so churning processes do not
grow the table."""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import pyfuse3

FIRST_INO = 1 << 32  # static inodes count up from 2 and never get near


@dataclass(frozen=True, slots=True)
class Entry:
    """A dynamic directory, file (open(ctx) returns a new fd) or symlink (target)."""
    kind: str  # "dir", "file" or "link"
    mode: int  # permission bits
    uid: int = 0
    gid: int = 0
    open: Callable[[Any], int] | None = None
    target: bytes | Callable[[Any], bytes] = b""  # a callable answers per reader (ctx)
    timeout: float = 1.0
    eager: bool = False  # small output: open() reads it inline (no worker thread)
    gone_if_empty: bool = False  # eager and empty: the object is gone (ENOENT, as /proc)
    pass_errors: bool = False  # a failed read gives the reader its errno (else EIO)

    @property
    def st_mode(self) -> int:
        kind = {"dir": stat.S_IFDIR, "file": stat.S_IFREG, "link": stat.S_IFLNK}[self.kind]
        return kind | (self.mode & 0o7777)


class Provider(Protocol):
    def lookup(self, path: str, ctx) -> Entry | None: ...

    def listdir(self, path: str, ctx) -> Iterable[tuple[str, Entry]]: ...


class DynTable:
    """Inode numbers, entries and lookup counts of dynamic paths."""

    def __init__(self, attr: Callable[[int, int, int], pyfuse3.EntryAttributes]):
        self._attr = attr  # (ino, st_mode, nlink) -> EntryAttributes
        self._ino_of: dict[str, int] = {}
        self._slots: dict[int, list] = {}  # ino -> [path, entry, attr, nlookup]
        self._next = FIRST_INO

    def __len__(self) -> int:
        return len(self._slots)

    def attr(self, path: str, e: Entry, *, count: bool = True) -> pyfuse3.EntryAttributes:
        """The attributes for path's (new) entry; count=True takes one lookup on it."""
        ino = self._ino_of.get(path)
        if ino is None:
            ino = self._ino_of[path] = self._next
            self._next += 1
            self._slots[ino] = [path, e, None, 0]
        slot = self._slots[ino]
        a = self._attr(ino, e.st_mode, 2 if e.kind == "dir" else 1)
        a.st_uid, a.st_gid = e.uid, e.gid
        a.entry_timeout = a.attr_timeout = e.timeout
        if e.kind == "link" and not callable(e.target):
            a.st_size = len(e.target)
        slot[1], slot[2] = e, a
        if count:
            slot[3] += 1
        return a

    def ref(self, ino: int) -> None:
        slot = self._slots.get(ino)
        if slot is not None:
            slot[3] += 1

    def get(self, ino: int):
        """(path, entry, attr) of a live dynamic inode, or None."""
        slot = self._slots.get(ino)
        return None if slot is None else (slot[0], slot[1], slot[2])

    def forget(self, ino: int, n: int) -> None:
        slot = self._slots.get(ino)
        if slot is None:
            return
        slot[3] -= n
        if slot[3] <= 0:
            del self._slots[ino]
            if self._ino_of.get(slot[0]) == ino:
                del self._ino_of[slot[0]]
