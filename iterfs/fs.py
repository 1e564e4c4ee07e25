"""The pyfuse3 Operations layer: a read-only tree of nodes whose files stream from fresh fds."""

from __future__ import annotations

import errno
import functools
import logging
import mmap
import os
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pyfuse3
import trio

from .dyn import DynTable, Provider

__all__ = ["FileNode", "IterFS", "MountError", "serve", "terminate"]

log = logging.getLogger(__name__)

# The fd read is looked up through this name at call time so that tests can inject
# failures (E2BIG, EAGAIN) that no ordinary fd produces.
_os_readv = os.readv

READ_CHUNK = 256 * 1024
"""Bytes asked of the source fd per read(2); a BPF iterator returns at most its seq
buffer (PAGE_SIZE << 3) per call, a pipe at most its capacity."""

LOOKAHEAD = 1 << 20
"""How far a handle's worker reads beyond the furthest offset its reader has asked for."""

EAGER_MAX = 64 * 1024
"""What open() reads inline from an eager (small, per-process) source before a pump takes over."""

CHUNK_SHIFT = 20
CHUNK = 1 << CHUNK_SHIFT
CHUNK_MASK = CHUNK - 1

DIR_MODE = 0o555
BLKSIZE = 128 * 1024
"""st_blksize: cat and Python's buffered IO size their reads from it."""


class MountError(RuntimeError):
    """pyfuse3 could not create or mount the FUSE session."""


@dataclass(frozen=True, slots=True)
class FileNode:
    """A virtual file: permission bits and a callable returning a NEW readable fd per open.

    The callable runs on the trio thread and must not block (creating a BPF iterator fd
    does not); the reads of the fd it returns may block and run in worker threads.
    """

    mode: int
    open: Callable[[], int]
    name_hint: str = ""
    open_for: Callable[[object], int] | None = None  # if set: open_for(ctx), per reader


# -- the tree ------------------------------------------------------------------------
#
# A tree is an immutable snapshot built in full by replace() and published by a single
# attribute assignment, so every handler sees either the old tree or the new one. Inode
# numbers come from a table keyed by (path, is_dir) that only grows: a path that persists
# across a reload keeps its inode (the kernel's cached dentries stay valid), a path that
# turns from file into directory gets a new one (the kernel marks an inode bad whose type
# changes). The table is bounded by the number of distinct paths ever published.
#
# Removed inodes are "retired": getattr still answers with st_nlink 0 (like an unlinked
# file that is still open, so fstat on an old handle works), lookup/open answer ENOENT.
# The kernel may keep a dentry of a removed path for up to entry_timeout; open() of it
# still fails because open goes by inode. Lookup counts are not tracked: nothing is ever
# freed by forget().


@dataclass(frozen=True, slots=True)
class _Tree:
    attrs: dict[int, pyfuse3.EntryAttributes]
    children: dict[int, dict[bytes, int]]  # directory inode -> name -> inode
    parent: dict[int, int]
    files: dict[int, FileNode]
    paths: dict[int, str]


def _split(path: str) -> list[str]:
    if not isinstance(path, str):
        raise TypeError(f"iterfs path must be str, not {type(path).__name__}: {path!r}")
    parts = path.split("/")
    if not path or any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise ValueError(f"bad iterfs path {path!r}: want relative names like 'net/tcp'")
    return parts


# -- streaming buffers -------------------------------------------------------------
#
# Each handle keeps everything its fd has produced, so any offset already produced can
# be served again (readers re-read, pread at odd offsets, and the kernel sends reads of
# any size). The output lives in fixed 1 MiB chunks of anonymous memory:
#
#   views:  [ chunk 0 ][ chunk 1 ][ chunk 2 ]...     offset = i << CHUNK_SHIFT | o
#   size:   bytes produced so far (the tail of the last chunk is free space)
#
# A worker thread (the "pump") reads the fd straight into the free space and publishes
# each read by advancing `size`; the trio thread serves [off, end) whenever end <= size,
# with no lock and no thread round-trip. Chunks never move or resize, so the memoryview
# slices handed to pyfuse3 need no copy; only a read spanning two chunks is joined.
# Fresh memory costs a page fault per 4 KiB (here about as much as the copy), so the
# chunks of released handles go back to a small pool; chunks are mmap'd, so a small
# file touches only the pages it fills.
#
# A pump runs in its own trio task (in the nursery serve() lends) and keeps reading
# while `size` < `hw` + LOOKAHEAD, `hw` being the furthest end any read has asked for:
# it starts at open (every open is followed by a read), restarts when a reader gets
# within LOOKAHEAD/2 of the produced end, and stops at EOF, on error, or when the
# handle is released. A reader that needs bytes not produced yet registers (wait_end,
# wake) and the pump wakes it through the trio token as soon as they are there, so the
# iterator, the kernel's copy to the reader and the reader itself all run at once, and
# one thread round-trip covers a whole file for a reader that keeps up. At most
# LOOKAHEAD is read that nobody asked for. Waiting readers of one handle queue on its
# trio.Lock; pumps of different handles run in parallel up to the thread limiter.
# The fd is closed only once no pump uses it: a closed fd number can be reused at once.


class _Handle:
    """One open file: its own source fd and everything produced from it so far."""

    __slots__ = (
        "fd", "path", "views", "size", "eof", "error", "logged", "hw",
        "filling", "closing", "wake", "wait_end", "lock", "static", "pass_errors",
    )  # fmt: skip

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path
        self.views: list[memoryview] = []
        self.size = 0  # written by the pump, read by the trio thread
        self.eof = False
        self.error: OSError | None = None
        self.logged = False
        self.hw = 0  # furthest end asked for
        self.filling = False  # a pump is scheduled or running
        self.closing = False  # released: the pump stops, then the fd is closed
        self.wake: trio.Event | None = None
        self.wait_end = 0
        self.lock = trio.Lock()
        self.static = False  # a catalog file (not a per-process one): its size is learnt
        self.pass_errors = False  # a read error is the reader's answer (passthrough), not EIO

    def slice(self, off: int, end: int):
        i = off >> CHUNK_SHIFT
        if i == (end - 1) >> CHUNK_SHIFT:
            base = i << CHUNK_SHIFT
            return self.views[i][off - base : end - base]
        parts = []
        while off < end:
            i = off >> CHUNK_SHIFT
            base = i << CHUNK_SHIFT
            stop = min(end, base + CHUNK)
            parts.append(self.views[i][off - base : stop - base])
            off = stop
        return b"".join(parts)


def _new_chunk() -> memoryview:
    return memoryview(mmap.mmap(-1, CHUNK, flags=mmap.MAP_PRIVATE))


def _pump(h: _Handle, pool: list[memoryview], token: trio.lowlevel.TrioToken) -> None:
    """Worker thread: read `h.fd` into `h`'s chunks until far enough ahead, EOF or error."""
    fd = h.fd
    views = h.views
    pos = h.size
    # The pump only reads h.wake (the waiter sets and clears it): a read-then-clear here
    # could clear the Event of the next waiter, set between the two, and strand it.
    fired = None
    try:
        while not h.closing and pos < h.hw + LOOKAHEAD:
            i = pos >> CHUNK_SHIFT
            while len(views) < i + 2:  # this chunk and the next: one read may span both
                try:
                    views.append(pool.pop())
                except IndexError:
                    views.append(_new_chunk())
            o = pos & CHUNK_MASK
            # Every read(2) of an iterator fd is a seq_file boundary, and some iterators
            # lose objects there (6.18's unix iterator skips the rest of a hash bucket),
            # so each read asks for a full READ_CHUNK even across the end of a chunk.
            if CHUNK - o >= READ_CHUNK:
                iov = [views[i][o : o + READ_CHUNK]]
            else:
                iov = [views[i][o:], views[i + 1][: READ_CHUNK - (CHUNK - o)]]
            n = _os_readv(fd, iov)
            if n == 0:
                h.eof = True
                return
            pos += n
            h.size = pos
            wake = h.wake
            if wake is not None and wake is not fired and pos >= h.wait_end:
                fired = wake
                token.run_sync_soon(wake.set)
    except OSError as exc:
        h.error = exc
    except Exception as exc:  # a bug
        h.error = OSError(errno.EIO, f"{type(exc).__name__}: {exc}")
        log.exception("reading %s", h.path)
    finally:  # EOF, error or far enough: a waiting reader can go on (saves a hop)
        wake = h.wake
        if wake is not None and wake is not fired:
            token.run_sync_soon(wake.set)


def _prefill(h: _Handle, pool: list[memoryview]) -> None:
    """Read a small source to its end right here, on the trio thread: for per-process
    files (one /proc line, a few KiB) two read(2)s of CPU-bound iterator work cost less
    than the thread round-trip a pump takes. Stops after EAGER_MAX bytes: the pump,
    in a worker thread, reads whatever is left."""
    views = h.views
    if not views:
        try:
            views.append(pool.pop())
        except IndexError:
            views.append(_new_chunk())
    try:
        while h.size < EAGER_MAX:
            n = _os_readv(h.fd, [views[0][h.size:EAGER_MAX]])
            if n == 0:
                h.eof = True
                return
            h.size += n
    except OSError as exc:
        h.error = exc


def _guard(handler):
    """Let only FUSEError out of a handler: any other exception would end pyfuse3.main()."""

    @functools.wraps(handler)
    async def guarded(self, *args):
        try:
            return await handler(self, *args)
        except pyfuse3.FUSEError:
            raise
        except OSError as exc:
            log.debug("%s%r: %s", handler.__name__, args, exc)
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        except Exception:
            log.exception("%s%r failed", handler.__name__, args)
            raise pyfuse3.FUSEError(errno.EIO) from None

    return guarded


def _erofs(name: str):
    async def handler(self, *args):
        raise pyfuse3.FUSEError(errno.EROFS)

    handler.__name__ = handler.__qualname__ = name
    return handler


class IterFS(pyfuse3.Operations):
    """Read-only FUSE operations over a mapping of relative paths to `FileNode`s.

    Keys are relative paths ("tasks", "net/tcp"); directories are implied (mode 0555).
    Files show st_size 0 and are opened direct_io, so every open streams a fresh fd.
    uid/gid own every inode, timestamps are the construction time, entry/attr timeouts
    bound how long the kernel caches a name or attributes after a replace().
    max_threads bounds the worker threads reading fds; pool_bytes is how much released
    buffer memory is kept for reuse.
    """

    supports_dot_lookup = True
    enable_writeback_cache = False
    enable_acl = False

    def __init__(
        self,
        files: Mapping[str, FileNode],
        *,
        uid: int = 0,
        gid: int = 0,
        entry_timeout: float = 1.0,
        attr_timeout: float = 1.0,
        max_threads: int | None = None,
        pool_bytes: int = 32 * CHUNK,
        providers: tuple[Provider, ...] = (),
    ) -> None:
        super().__init__()
        self.providers = tuple(providers)
        self.uid = uid
        self.gid = gid
        self.entry_timeout = entry_timeout
        self.attr_timeout = attr_timeout
        self.mount_ns = time.time_ns()
        # Iterator reads are kernel CPU work (or, for odd sources, plain blocking). A pump
        # holds its thread while its reader keeps up, so the limit is about concurrent
        # streaming readers, not CPUs: beyond it, pumps queue on the trio side (never on
        # the loop) until another reader finishes or falls LOOKAHEAD behind.
        if max_threads is None:
            max_threads = min(64, max(32, 4 * (os.cpu_count() or 1)))
        self.limiter = trio.CapacityLimiter(max_threads)
        self._pool: list[memoryview] = []
        self._pool_max = pool_bytes >> CHUNK_SHIFT
        # catalog paths whose last complete output fit EAGER_MAX: their next open reads
        # inline (a worker thread's round trip costs more than a few KiB of iterator)
        self._small: set[str] = set()
        self._nursery: trio.Nursery | None = None  # lent by serve() for the pumps
        self._inode_of: dict[tuple[str, bool], int] = {("", True): pyfuse3.ROOT_INODE}
        self._next_inode = pyfuse3.ROOT_INODE + 1
        self._retired: dict[int, pyfuse3.EntryAttributes] = {}
        self._replace_lock = threading.Lock()
        self._tree: _Tree = _Tree({}, {}, {}, {}, {})
        self._handles: dict[int, _Handle] = {}
        self._dirs: dict[int, tuple[tuple[bytes, pyfuse3.EntryAttributes], ...]] = {}
        self._next_fh = 1
        self._dyn = DynTable(self._attr)
        self.replace(files)

    # -- tree management ---------------------------------------------------------------

    def replace(self, files: Mapping[str, FileNode]) -> None:
        """Swap the whole tree atomically; callable from any thread.

        Paths that persist keep their inode numbers, new opens get the new nodes, removed
        paths answer ENOENT; open handles keep reading their own fd to its end. The
        kernel may show a removed name or old attributes for up to the timeouts.
        Raises ValueError/TypeError (tree unchanged) for a malformed mapping.
        """
        entries: dict[str, FileNode | None] = {"": None}  # None marks a directory
        for path, node in files.items():
            parts = _split(path)
            if not isinstance(node, FileNode):
                raise TypeError(f"{path!r}: expected FileNode, got {type(node).__name__}")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if entries.get(d, None) is not None:
                    raise ValueError(f"{path!r}: {d!r} is a file, not a directory")
                entries[d] = None
            if path in entries:
                raise ValueError(f"{path!r} is a directory (or listed twice)")
            entries[path] = node

        with self._replace_lock:
            old = self._tree
            attrs: dict[int, pyfuse3.EntryAttributes] = {}
            children: dict[int, dict[bytes, int]] = {}
            parent: dict[int, int] = {}
            nodes: dict[int, FileNode] = {}
            paths: dict[int, str] = {}
            for path, node in entries.items():
                ino = self._inode(path, node is None)
                paths[ino] = path
                if node is None:
                    children[ino] = {}
                else:
                    nodes[ino] = node
            for ino, path in paths.items():
                if path:
                    head, _, name = path.rpartition("/")
                    pino = self._inode_of[(head, True)]
                    parent[ino] = pino
                    children[pino][os.fsencode(name)] = ino
            parent[pyfuse3.ROOT_INODE] = pyfuse3.ROOT_INODE
            for ino in paths:
                if ino in nodes:
                    mode = stat.S_IFREG | (nodes[ino].mode & 0o7777)
                    nlink = 1
                else:
                    mode = stat.S_IFDIR | DIR_MODE
                    nlink = 2 + sum(1 for c in children[ino].values() if c in children)
                attrs[ino] = self._attr(ino, mode, nlink)
            for ino, attr in old.attrs.items():
                if ino not in attrs:
                    self._retired[ino] = self._attr(ino, attr.st_mode, 0)
            for ino in attrs:
                self._retired.pop(ino, None)
            self._tree = _Tree(attrs, children, parent, nodes, paths)

    def _inode(self, path: str, is_dir: bool) -> int:
        key = (path, is_dir)
        ino = self._inode_of.get(key)
        if ino is None:
            ino = self._inode_of[key] = self._next_inode
            self._next_inode += 1
        return ino

    def _attr(self, ino: int, mode: int, nlink: int) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = ino
        a.st_mode = mode
        a.st_nlink = nlink
        a.st_uid = self.uid
        a.st_gid = self.gid
        a.st_size = 0
        a.st_blksize = BLKSIZE
        a.st_blocks = 0
        a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = self.mount_ns
        a.entry_timeout = self.entry_timeout
        a.attr_timeout = self.attr_timeout
        return a

    def open_handles(self) -> int:
        """Open file handles (released ones no longer count, even while their fd closes)."""
        return len(self._handles)

    def close_all(self) -> None:
        """Close every source fd still open (after the session has ended)."""
        handles, self._handles = self._handles, {}
        for h in handles.values():
            h.closing = True
            if not h.filling:
                self._close(h)
        self._dirs.clear()

    def _stop_pumps(self) -> None:
        for h in self._handles.values():
            h.closing = True

    def _close(self, h: _Handle) -> None:
        """Close the fd and recycle the chunks; only when no fill holds the handle."""
        if h.static and h.eof and h.error is None:
            if h.size <= EAGER_MAX:
                self._small.add(h.path)
            else:
                self._small.discard(h.path)
        fd, h.fd = h.fd, -1
        views, h.views = h.views, []
        room = self._pool_max - len(self._pool)
        if room > 0:
            self._pool.extend(views[:room])
        if fd >= 0:
            try:
                os.close(fd)
            except OSError as exc:
                log.warning("closing the source fd of %s: %s", h.path, exc)

    # -- lifecycle ---------------------------------------------------------------------

    def init(self) -> None:
        try:
            log.debug("FUSE session initialised (%d inodes)", len(self._tree.attrs))
        except Exception:  # init() must never raise
            pass

    async def forget(self, inode_list) -> None:
        # Static inodes are never freed (see the tree notes above); dynamic ones are
        # counted (iterfs.dyn). forget() must never raise.
        try:
            for ino, n in inode_list:
                self._dyn.forget(ino, n)
        except Exception:
            log.exception("forget")

    # -- metadata ----------------------------------------------------------------------

    @_guard
    async def lookup(self, parent_inode, name, ctx=None):
        tree = self._tree
        kids = tree.children.get(parent_inode)
        if kids is not None:
            if name == b".":
                return tree.attrs[parent_inode]
            if name == b"..":
                return tree.attrs[tree.parent[parent_inode]]
            ino = kids.get(name)
            if ino is not None:
                return tree.attrs[ino]
            return self._lookup_dynamic(tree.paths[parent_inode], name, ctx)
        dyn = self._dyn.get(parent_inode)
        if dyn is not None and dyn[1].kind == "dir":
            if name in (b".", b".."):
                raise pyfuse3.FUSEError(errno.ENOENT)  # supports_dot_lookup: rarely asked
            return self._lookup_dynamic(dyn[0], name, ctx)
        raise pyfuse3.FUSEError(errno.ENOTDIR if parent_inode in tree.attrs or dyn else errno.ENOENT)

    def _lookup_dynamic(self, parent: str, name: bytes, ctx):
        if self.providers and name not in (b".", b".."):
            path = f"{parent}/{os.fsdecode(name)}" if parent else os.fsdecode(name)
            for prov in self.providers:
                e = prov.lookup(path, ctx)
                if e is not None:
                    return self._dyn.attr(path, e)
        raise pyfuse3.FUSEError(errno.ENOENT)

    def _attr_of(self, inode):
        attr = self._tree.attrs.get(inode)
        if attr is None:
            dyn = self._dyn.get(inode)
            attr = dyn[2] if dyn is not None else self._retired.get(inode)
        if attr is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return attr

    @_guard
    async def getattr(self, inode, ctx=None):
        return self._attr_of(inode)

    @_guard
    async def access(self, inode, mode, ctx):
        attr = self._attr_of(inode)
        if mode & os.W_OK:
            raise pyfuse3.FUSEError(errno.EROFS)
        st_mode = attr.st_mode
        if ctx is None or ctx.uid == 0:
            return not (mode & os.X_OK) or stat.S_ISDIR(st_mode) or bool(st_mode & 0o111)
        if ctx.uid == attr.st_uid:
            bits = (st_mode >> 6) & 7
        elif ctx.gid == attr.st_gid:
            bits = (st_mode >> 3) & 7
        else:
            bits = st_mode & 7
        return (mode & bits) == mode

    @_guard
    async def readlink(self, inode, ctx=None):
        dyn = self._dyn.get(inode)
        if dyn is None or dyn[1].kind != "link":
            raise pyfuse3.FUSEError(errno.EINVAL)
        target = dyn[1].target
        return target(ctx) if callable(target) else target

    @_guard
    async def statfs(self, ctx=None):
        s = pyfuse3.StatvfsData()
        s.f_bsize = BLKSIZE
        s.f_frsize = BLKSIZE
        s.f_blocks = s.f_bfree = s.f_bavail = 0
        s.f_files = len(self._tree.attrs)
        s.f_ffree = s.f_favail = 0
        s.f_namemax = 255
        return s

    @_guard
    async def getxattr(self, inode, name, ctx=None):
        raise pyfuse3.FUSEError(errno.ENODATA)

    @_guard
    async def listxattr(self, inode, ctx=None):
        return []

    # -- directories -------------------------------------------------------------------

    @_guard
    async def opendir(self, inode, ctx=None):
        # The listing is a snapshot: a replace() during the listing can neither skip
        # nor repeat an entry, and next_id is simply the index into the snapshot.
        tree = self._tree
        kids = tree.children.get(inode)
        if kids is not None:
            path = tree.paths[inode]
            parent_attr = tree.attrs[tree.parent[inode]]
        else:
            dyn = self._dyn.get(inode)
            if dyn is None or dyn[1].kind != "dir":
                raise pyfuse3.FUSEError(errno.ENOTDIR if inode in tree.attrs or dyn else errno.ENOENT)
            kids, path, parent_attr = {}, dyn[0], dyn[2]
        # "." and ".." are listed as /proc does; the kernel makes no dentries for them.
        # Entries carry a dynamic path when the kernel's taking them counts a lookup.
        listing = [(b".", self._attr_of(inode), None), (b"..", parent_attr, None)]
        listing.extend((name, tree.attrs[kids[name]], None) for name in sorted(kids))
        seen = set(kids)
        for prov in self.providers:
            for name, e in prov.listdir(path, ctx):
                bname = os.fsencode(name)
                if bname in seen:
                    continue
                seen.add(bname)
                child = f"{path}/{name}" if path else name
                listing.append((bname, self._dyn.attr(child, e, count=False), child))
        fh = self._new_fh()
        self._dirs[fh] = tuple(listing)
        return fh

    @_guard
    async def readdir(self, fh, start_id, token):
        listing = self._dirs.get(fh)
        if listing is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        for i in range(start_id, len(listing)):
            name, attr, dyn_path = listing[i]
            if not pyfuse3.readdir_reply(token, name, attr, i + 1):
                break
            if dyn_path is not None:  # readdirplus: the kernel now holds a lookup on it
                self._dyn.ref(attr.st_ino)

    @_guard
    async def releasedir(self, fh):
        self._dirs.pop(fh, None)

    # -- files -------------------------------------------------------------------------

    def _new_fh(self) -> int:
        fh = self._next_fh
        self._next_fh += 1
        return fh

    @_guard
    async def open(self, inode, flags, ctx=None):
        if flags & os.O_ACCMODE != os.O_RDONLY:
            raise pyfuse3.FUSEError(errno.EROFS)
        tree = self._tree
        node = tree.files.get(inode)
        eager = gone_if_empty = pass_errors = False
        if node is not None:
            path = tree.paths[inode]
            eager = path in self._small
            opener = node.open if node.open_for is None else functools.partial(node.open_for, ctx)
        else:
            dyn = self._dyn.get(inode)
            if dyn is None or dyn[1].kind != "file":
                raise pyfuse3.FUSEError(errno.EISDIR if inode in tree.children or dyn else errno.ENOENT)
            path, e = dyn[0], dyn[1]
            opener = functools.partial(e.open, ctx)
            eager, gone_if_empty, pass_errors = e.eager, e.gone_if_empty, e.pass_errors
        try:
            fd = opener()
        except OSError as exc:
            log.debug("open %s: %s", path, exc)
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        except Exception:
            log.exception("open %s failed", path)
            raise pyfuse3.FUSEError(errno.EIO) from None
        if type(fd) is not int or fd < 0:
            log.error("open %s: returned %r, not an fd", path, fd)
            raise pyfuse3.FUSEError(errno.EIO)
        fh = self._new_fh()
        h = self._handles[fh] = _Handle(fd, path)
        h.static = node is not None
        h.pass_errors = pass_errors
        if eager:
            _prefill(h, self._pool)
            if gone_if_empty and h.eof and not h.size:
                self._handles.pop(fh)
                self._close(h)
                raise pyfuse3.FUSEError(errno.ENOENT)
        if self._nursery is not None and not h.eof and h.error is None:
            self._start_pump(h)  # every open is followed by a read: start now
        return pyfuse3.FileInfo(fh=fh, direct_io=True, keep_cache=False, nonseekable=False)

    # read() is the hot path: no decorator, and no thread round-trip or lock when the
    # buffer already covers the request. The reply is a memoryview of a chunk (no copy);
    # pyfuse3 copies it into the reply at once. (try costs nothing in 3.11 until raised.)
    async def read(self, fh, off, size):
        try:
            h = self._handles.get(fh)
            if h is None:
                raise pyfuse3.FUSEError(errno.EBADF)
            end = off + size
            if end > h.hw:
                h.hw = end
            if end > h.size:
                if not h.eof:
                    return await self._read_more(h, off, end)
                end = h.size
                if off >= end:
                    return b""
            elif (
                not h.eof
                and not h.filling
                and h.size - end < LOOKAHEAD // 2
                and h.error is None
                and self._nursery is not None
            ):
                self._start_pump(h)
            return h.slice(off, end)
        except pyfuse3.FUSEError:
            raise
        except Exception:
            log.exception("read of fh %d failed", fh)
            raise pyfuse3.FUSEError(errno.EIO) from None

    async def _read_more(self, h: _Handle, off: int, end: int):
        lock = h.lock
        try:
            lock.acquire_nowait()  # unlike `async with`, no schedule point when free
        except trio.WouldBlock:
            await lock.acquire()
        try:
            while end > h.size and not h.eof and h.error is None:
                if h.closing:
                    raise pyfuse3.FUSEError(errno.EBADF)
                if self._nursery is None:  # no session (direct calls): pump inline
                    h.filling = True
                    await self._run_pump(h)
                    continue
                if not h.filling:
                    self._start_pump(h)
                wake = trio.Event()
                h.wait_end = end  # before h.wake: the pump reads them the other way
                h.wake = wake
                try:
                    if end > h.size and h.filling:  # else the pump got there meanwhile
                        await wake.wait()
                finally:
                    h.wake = None
            if h.fd < 0:  # released while this read waited (its reader was killed)
                raise pyfuse3.FUSEError(errno.EBADF)
            if end > h.size:
                if not h.eof:  # a short reply would read as EOF: never truncate silently
                    err = h.error.errno if h.pass_errors and h.error is not None else None
                    raise pyfuse3.FUSEError(err or errno.EIO)
                end = h.size
                if off >= end:
                    return b""
            return h.slice(off, end)
        finally:
            lock.release()

    def _start_pump(self, h: _Handle) -> None:
        h.filling = True
        self._nursery.start_soon(self._run_pump, h)

    async def _run_pump(self, h: _Handle) -> None:
        # In serve()'s nursery: nothing may escape, or the session ends.
        try:
            if not h.closing:
                token = trio.lowlevel.current_trio_token()
                await trio.to_thread.run_sync(_pump, h, self._pool, token, limiter=self.limiter)
        except Exception as exc:
            h.error = OSError(errno.EIO, f"{type(exc).__name__}: {exc}")
            log.exception("reading %s", h.path)
        finally:
            h.filling = False
            wake = h.wake
            if wake is not None:
                wake.set()
            if h.error is not None and not h.logged:
                h.logged = True
                log.log(logging.DEBUG if h.pass_errors else logging.ERROR,
                        "reading %s failed after %d bytes: %s", h.path, h.size, h.error)
            if h.closing:
                self._close(h)

    @_guard
    async def release(self, fh):
        h = self._handles.pop(fh, None)
        if h is None:
            return
        h.closing = True
        if not h.filling:
            self._close(h)
        # else the pump stops after its current read and _run_pump closes the fd

    # -- everything that would change the tree -----------------------------------------

    setattr = _erofs("setattr")
    write = _erofs("write")
    create = _erofs("create")
    mknod = _erofs("mknod")
    mkdir = _erofs("mkdir")
    unlink = _erofs("unlink")
    rmdir = _erofs("rmdir")
    rename = _erofs("rename")
    symlink = _erofs("symlink")
    link = _erofs("link")
    setxattr = _erofs("setxattr")
    removexattr = _erofs("removexattr")


# -- the session -----------------------------------------------------------------------
#
# pyfuse3 keeps one session per process in module globals, and its terminate()/close()
# dereference that session unchecked: calling them with no session crashes the process.
# _Session records whether one is live, so terminate() is safe at any time and from
# anywhere; serve() lends its nursery to the pumps and, once main() has returned, tells
# the pumps still running to stop before the session is closed.


class _Session:
    active = False
    serving = False
    stop = False
    token: trio.lowlevel.TrioToken | None = None


async def serve(
    ops: IterFS,
    mountpoint: str,
    *,
    fsname: str = "iterfs",
    allow_other: bool = True,
    debug: bool = False,
    max_tasks: int | None = None,
    on_mounted: Callable[[], None] | None = None,
    unmount: Callable[[], None] | None = None,
    task_status=trio.TASK_STATUS_IGNORED,
) -> None:
    """Mount `ops` on `mountpoint`, serve until terminate() or unmount, then unmount.

    Mount options: fsname, ro, default_permissions, nosuid, nodev, noatime (+ allow_other,
    debug). `task_status.started()` comes once the mount exists; requests are answered
    as soon as pyfuse3.main() runs right after. Raises MountError when the mount fails.
    pyfuse3 allows one session per process. on_mounted() runs right after the mount,
    before any request is answered (the daemon drops its privileges there); unmount(),
    if given, unmounts at the end instead of pyfuse3 (which an unprivileged process
    cannot do for a mount root made).
    """
    if _Session.active:
        raise MountError("pyfuse3 serves one mount per process; one is already active")
    options = {f"fsname={fsname}", "ro", "default_permissions", "nosuid", "nodev", "noatime"}
    if allow_other:
        options.add("allow_other")
    if debug:
        options.add("debug")
    if max_tasks is None:
        # Every request in flight holds one pyfuse3 task; leave room for metadata
        # requests beyond the reads that may wait on the thread limiter.
        max_tasks = max(99, 2 * int(ops.limiter.total_tokens) + 32)
    _Session.stop = False
    try:
        pyfuse3.init(ops, os.fspath(mountpoint), options)
    except RuntimeError as exc:
        if "mount" in str(exc):  # the session exists but is not mounted
            pyfuse3.close(unmount=False)
        raise MountError(f"cannot mount iterfs on {mountpoint}: {exc}") from exc
    _Session.active = True
    try:
        if on_mounted is not None:
            on_mounted()
        async with trio.open_nursery() as nursery:
            ops._nursery = nursery
            _Session.token = trio.lowlevel.current_trio_token()
            _Session.serving = True
            log.info("mounted on %s", mountpoint)
            task_status.started()
            if not _Session.stop:
                await pyfuse3.main(max_tasks=max_tasks)
            _Session.serving = False
            ops._nursery = None
            # Pumps still running stop after their current read (a thread cannot be
            # cancelled); none starts any more.
            ops._stop_pumps()
    finally:
        _Session.serving = False
        _Session.token = None
        ops._nursery = None
        try:
            # the FUSE fd closes first: anything blocked on the mount (the unmounter too)
            # gets ENOTCONN instead of waiting for a main() that is gone
            pyfuse3.close(unmount=unmount is None)
            if unmount is not None:
                try:
                    unmount()
                except Exception as exc:
                    log.error("unmounting %s: %s", mountpoint, exc)
        finally:
            _Session.active = False
            ops.close_all()
            log.info("unmounted %s", mountpoint)


def _terminate_here() -> None:
    if _Session.serving:
        pyfuse3.terminate()


def terminate() -> None:
    """End a running serve(); callable from anywhere, a no-op when nothing is served.

    From its trio thread (a signal receiver loop), a plain signal handler or another
    thread alike: it goes through TrioToken.run_sync_soon, the one trio entry point
    that is safe from all of them. A terminate() between serve()'s start and the mount
    is honoured too: main() is then never entered.
    """
    _Session.stop = True
    token = _Session.token
    if token is not None:
        try:
            token.run_sync_soon(_terminate_here)
        except trio.RunFinishedError:
            pass
