"""Process directories: /<pid>/… and /<pid>/task/<tid>/…, listed from a task iterator.

A provider (iterfs.dyn) for the mount's root: every process the task iterator sees is a
directory holding the catalog's per="pid" files, `task/<tid>/` with the per="tid" files,
and `fd/` (symlinks) when a links=True spec is named "fd". Each open links the spec's
program with pid= (or tid=) and creates a fresh iterator fd, like a /proc file.

Visibility follows procfs's hidepid: "off" (everyone sees every process), "noaccess"
(directories of other users' processes are listed but mode 0500, so only their owner and
root enter), "invisible" (other users' processes are absent). Entries then carry no
cache time (timeout 0), so the kernel asks again for every caller and nothing one user
was shown reaches another.
"""

from __future__ import annotations

import errno
import logging
import re
import threading
import time

from . import programs
from .btf import BTF
from .catalog import Loaded
from .dsl.program import Field, IterProgram
from .dyn import Entry

log = logging.getLogger("iterfs")

HIDEPID = ("off", "noaccess", "invisible")
_FRESH = 1.0  # seconds a process listing answers lookups
_LINKS_FRESH = 0.5  # seconds an fd listing answers the readlinks that follow it


def build_listing(btf: BTF):
    """One line per task: tgid, tid, euid, egid (the owner /proc gives its directory), and
    whether it has an mm and the mm's dumpable bits (ptrace_may_access refuses a
    non-dumpable process to its own user)."""
    p = IterProgram("task", btf=btf, name="iterfs_pids")
    t = p.ctx_ptr("task")
    p.exit_if_null(t)
    p.seq_printf("%d %d %u %u %lu %lu\n", Field(t, "tgid"), Field(t, "pid"),
                 Field(t, "cred->euid.val"), Field(t, "cred->egid.val"),
                 Field(t, "mm"), Field(t, "mm->flags.__mm_flags[0]"))
    return p.build()


_MMF_DUMPABLE_MASK, _SUID_DUMP_USER = 3, 1


PID_MAX_LIMIT = 4 * 1024 * 1024  # include/linux/threads.h, 64-bit


def pid_of(name: str) -> int | None:
    """The pid a directory name stands for, as procfs's name_to_int() reads it: ASCII
    digits, no leading zero, within PID_MAX_LIMIT."""
    if not (name.isascii() and name.isdigit()) or name.startswith("0") or len(name) > 7:
        return None
    pid = int(name)
    return pid if pid <= PID_MAX_LIMIT else None


def dump_owner(owner: tuple[int, int, bool]) -> tuple[int, int]:
    """fs/proc/base.c task_dump_owner(): a non-dumpable process's entries are root's
    (all but its 0555 directories)."""
    return owner[:2] if owner[2] else (0, 0)


def may_ptrace(owner: tuple[int, int, bool], ctx) -> bool:
    """ptrace_may_access(PTRACE_MODE_READ_FSCREDS), roughly: root, or the owner of a
    dumpable process."""
    return ctx is None or ctx.uid == 0 or (ctx.uid == owner[0] and owner[2])


class _Listing:
    """The parsed output of one run of the listing program."""

    def __init__(self, text: bytes):
        self.at = time.monotonic()
        # tgid -> (euid, egid, dumpable) of the leader
        self.procs: dict[int, tuple[int, int, bool]] = {}
        self.threads: dict[int, list[int]] = {}       # tgid -> tids
        owners: dict[int, tuple[int, int, bool]] = {}
        for line in text.split(b"\n"):
            if not line:
                continue
            tgid, tid, uid, gid, mm, flags = (int(x) for x in line.split())
            self.threads.setdefault(tgid, []).append(tid)
            # no mm (a kernel thread, an exiting task): nothing for ptrace to refuse
            owners[tid] = (uid, gid, not mm or flags & _MMF_DUMPABLE_MASK == _SUID_DUMP_USER)
        for tgid in self.threads:
            self.procs[tgid] = owners.get(tgid) or owners[self.threads[tgid][0]]


class ProcDirs:
    """The provider. `specs` are the loaded per-process catalog entries."""

    def __init__(self, btf: BTF, specs: list[Loaded], *, hidepid: str = "off", cache=None,
                 ensure=None):
        if hidepid not in HIDEPID:
            raise ValueError(f"hidepid must be one of {', '.join(HIDEPID)}, not {hidepid!r}")
        self.hidepid = hidepid
        self.timeout = 0.0 if hidepid != "off" else 1.0
        spec = cache.build(build_listing, "<listing>", btf) if cache else build_listing(btf)
        self.listing_prog = spec.load(btf=btf)
        self.listing_link = programs.link_iterator(self.listing_prog)
        self.set_specs(specs)
        self._ensure = ensure or (lambda: None)  # makes sure the per-process specs are here
        self._cache: _Listing | None = None
        self._lock = threading.Lock()
        self._link_cache: dict[tuple[str, int], tuple[float, dict[str, bytes]]] = {}

    def set_specs(self, specs: list[Loaded]) -> None:
        self.per_pid = {ld.spec.path: ld for ld in specs if ld.spec.per == "pid"}
        self.per_tid = {ld.spec.path: ld for ld in specs if ld.spec.per == "tid"}

    def close(self) -> None:
        self.listing_link.close()
        self.listing_prog.close()

    # --- what exists ---
    def _run(self, **params) -> _Listing:
        if params:
            with programs.link_iterator(self.listing_prog, **params) as link, link.new_iter() as fd:
                return _Listing(programs.read_all(fd.fd))
        with self.listing_link.new_iter() as fd:
            return _Listing(programs.read_all(fd.fd))

    def listing(self, fresh: bool = True) -> _Listing:
        with self._lock:
            if fresh or self._cache is None or time.monotonic() - self._cache.at > _FRESH:
                self._cache = self._run()
            return self._cache

    def _process(self, pid: int) -> tuple[tuple[int, int], list[int]] | None:
        """(owner, tids) of a process: from a recent listing, else from the iterator."""
        cache = self._cache
        if cache is not None and time.monotonic() - cache.at <= _FRESH and pid in cache.procs:
            return cache.procs[pid], cache.threads[pid]
        one = self._run(pid=pid)
        if pid not in one.procs:
            return None
        return one.procs[pid], one.threads[pid]

    # --- entries ---
    def _visible(self, owner: tuple[int, int], ctx) -> bool:
        return self.hidepid != "invisible" or may_ptrace(owner, ctx)

    def _dir(self, owner, mode: int = 0o555) -> Entry:
        uid, gid = owner[:2] if mode == 0o555 else dump_owner(owner)
        if self.hidepid == "noaccess":
            mode &= 0o500
        return Entry("dir", mode, uid, gid, timeout=self.timeout)

    def _file(self, ld: Loaded, owner, **param) -> Entry:
        link_params = {**dict(ld.spec.params), **param}
        private = ld.spec.mode == 0o400 or ld.spec.ptrace

        def open_(ctx):
            permitted = may_ptrace(owner, ctx)
            if private and not permitted:
                raise OSError(errno.EACCES, "not the owner")
            prog = ld.program if permitted or ld.variant is None else ld.variant[0]
            with programs.link_iterator(prog, **link_params) as link:
                return link.new_iter().detach()

        uid, gid = dump_owner(owner)
        return Entry("file", ld.spec.mode, uid, gid, open=open_, timeout=self.timeout,
                     eager=True, gone_if_empty=ld.spec.nonempty)

    def _links(self, ld: Loaded, pid: int) -> dict[str, bytes]:
        """NAME -> target of a links=True spec ("fd": one "N TARGET" line per open fd);
        one run answers the lookups of a directory listing that follow it."""
        key = (ld.spec.path, pid)
        hit = self._link_cache.get(key)
        if hit is not None and time.monotonic() - hit[0] <= _LINKS_FRESH:
            return hit[1]
        with programs.link_iterator(ld.program, pid=pid) as link, link.new_iter() as fd:
            text = programs.read_all(fd.fd)
        out = {}
        for line in text.split(b"\n"):
            name, sep, target = line.partition(b" ")
            if sep:  # the fd listing writes "\n" as \012 and "\\" as \134
                out[name.decode()] = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m[1], 8)]), target)
        if len(self._link_cache) > 256:
            self._link_cache.clear()
        self._link_cache[key] = (time.monotonic(), out)
        return out

    def _children(self, pid: int, owner, tids, rest: list[str]) -> dict[str, Entry] | None:
        """The entries of directory <pid>/<rest...>, or None if it is not a directory."""
        self._ensure()
        if not rest:
            out = {"task": self._dir(owner)}
            for name, ld in self.per_pid.items():
                out[name] = (self._dir(owner, 0o500) if ld.spec.links
                             else self._file(ld, owner, pid=pid))
            return out
        if rest == ["task"]:
            return {str(t): self._dir(owner) for t in tids}
        if len(rest) == 2 and rest[0] == "task" and pid_of(rest[1]) in tids:
            tid = int(rest[1])
            return {name: self._file(ld, owner, tid=tid) for name, ld in self.per_tid.items()}
        if len(rest) == 1 and rest[0] in self.per_pid and self.per_pid[rest[0]].spec.links:
            return {n: Entry("link", 0o500, *dump_owner(owner), target=t, timeout=self.timeout)
                    for n, t in self._links(self.per_pid[rest[0]], pid).items()}
        return None

    def lookup(self, path: str, ctx) -> Entry | None:
        head, *rest = path.split("/")
        if pid_of(head) is None:
            return None
        proc = self._process(int(head))
        if proc is None or not self._visible(proc[0], ctx):
            return None
        owner, tids = proc
        if not rest:
            return self._dir(owner)
        kids = self._children(int(head), owner, tids, rest[:-1])
        return None if kids is None else kids.get(rest[-1])

    def listdir(self, path: str, ctx):
        if path == "":
            listing = self.listing()
            return [(str(pid), self._dir(owner)) for pid, owner in sorted(listing.procs.items())
                    if self._visible(owner, ctx)]
        head, *rest = path.split("/")
        if pid_of(head) is None:
            return []
        proc = self._process(int(head))
        if proc is None or not self._visible(proc[0], ctx):
            return []
        kids = self._children(int(head), proc[0], proc[1], rest)
        return sorted(kids.items()) if kids else []
