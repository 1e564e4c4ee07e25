"""The catalog: virtual files declared by modules in iterators/ (and --catalog directories).

A module declares `FILES = [IterSpec(...), ...]`. A spec is pure: `build(btf)` returns the
program as bytecode + rodata; loading it makes kernel objects (see Loaded)."""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.util
import logging
import os
import pkgutil
import sys
from collections.abc import Callable, Iterable, Mapping

from .btf import BTF
from .dsl.program import ProgramSpec
from .programs import Link, Program, link_iterator, read_all, target_name

log = logging.getLogger(__name__)

__all__ = ["IterSpec", "Entry", "Loaded", "discover", "check", "load", "read_once"]


def sysctl_int(name: str, default: int) -> int:
    try:
        with open(f"/proc/sys/{name}") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def kallsyms_show_value(cap_syslog: bool) -> bool:
    """kernel/kallsyms.c kallsyms_show_value() for a reader: kptr_restrict 0 and
    perf_event_paranoid <= 1 → everyone; kptr_restrict 0 or 1 → readers with CAP_SYSLOG (in
    the initial user namespace); kptr_restrict >= 2 → nobody."""
    kptr_restrict = sysctl_int("kernel/kptr_restrict", 2)
    if kptr_restrict == 0 and sysctl_int("kernel/perf_event_paranoid", 2) <= 1:
        return True
    return kptr_restrict <= 1 and cap_syslog


# IterSpec.addresses: given whether a reader has CAP_SYSLOG, does it see addresses?
ADDRESS_POLICIES = {"cap_syslog": bool, "kallsyms": kallsyms_show_value}


@dataclasses.dataclass(frozen=True)
class IterSpec:
    """One virtual file: path under the mount, iterator target, mode, link parameters
    (map_fd, tid, pid, cgroup_fd, order, ...) and the program builder."""
    path: str
    target: str
    build: Callable[[BTF], ProgramSpec]
    mode: int = 0o444
    params: Mapping = dataclasses.field(default_factory=dict)
    doc: str = ""
    netns: bool = False  # also served per named network namespace: netns/<name>/<path>
    # "pid": served in every process directory as <pid>/<path>, linked with pid=<pid> at
    # each open; "tid": as <pid>/task/<tid>/<path>, linked with tid=<tid>
    per: str = ""
    links: bool = False   # per="pid": output lines "NAME TARGET" become a directory of symlinks
    # per="pid"/"tid": a live process always prints something, so empty output means it
    # exited between lookup and open: the open fails with ENOENT, as /proc's does
    nonempty: bool = False
    ptrace: bool = False  # per="pid": only the process's owner (and root) may open it, as /proc's
                          # ptrace_may_access checks (maps, fd, environ)
    # the program for readers who may not see everything: for a process file, readers that
    # are neither root nor its owner (/proc's ptrace_may_access: stat's hidden addresses);
    # for other files readers without CAP_SYSLOG (kallsyms_show_value, %pK)
    unprivileged: Callable[[BTF], ProgramSpec] | None = None
    # who gets `build`'s program rather than `unprivileged`'s (files not per process):
    # "cap_syslog" (readers with CAP_SYSLOG) or "kallsyms" (kallsyms_show_value())
    addresses: str = "cap_syslog"
    # prints %pK: formatted for whoever reads the iterator fd (restricted_pointer())
    pointers: bool = False

    @property
    def key(self) -> str:
        """Where the file is served: its path, or "<pid>/path", "<pid>/task/<tid>/path"."""
        return {"": "", "pid": "<pid>/", "tid": "<pid>/task/<tid>/"}[self.per] + self.path

    def __post_init__(self):
        parts = self.path.split("/")
        if not self.path or self.path.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"bad catalog path '{self.path}' (relative, no '.', '..' or '//')")
        if self.per not in ("", "pid", "tid"):
            raise ValueError(f"{self.path}: per must be '', 'pid' or 'tid', not {self.per!r}")
        if self.addresses not in ADDRESS_POLICIES:
            raise ValueError(f"{self.path}: addresses must be one of {', '.join(ADDRESS_POLICIES)}")
        if self.mode & ~0o777 or not self.mode & 0o444:
            raise ValueError(f"{self.path}: mode {oct(self.mode)} must be permission bits with some read bit")


@dataclasses.dataclass
class Entry:
    """A spec found by discovery, with the module it came from and why it is unsupported."""
    spec: IterSpec | None
    module: str
    error: str = ""       # the module is broken (the spec is None)
    unsupported: str = ""  # the running kernel lacks something

    @property
    def ok(self) -> bool:
        return self.spec is not None and not self.error and not self.unsupported


def _specs_of(mod, name: str) -> list[IterSpec]:
    files = getattr(mod, "FILES", None)
    if files is None:
        raise ValueError("declares no FILES list (a catalog module defines "
                         "FILES = [IterSpec(...), ...])")
    files = list(files() if callable(files) else files)
    for s in files:
        if not isinstance(s, IterSpec):
            raise TypeError(f"FILES holds {type(s).__name__}, not IterSpec")
    return files


def _fresh(name: str):
    """Import a module, or re-run it when it was imported before (a reload)."""
    mod = sys.modules.get(name)
    return importlib.reload(mod) if mod is not None else importlib.import_module(name)


def _import_file(path: str):
    name = "iterfs_catalog_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.modules.pop(name, None)
    return mod


def _modules(extra_dirs: Iterable[str], builtin: bool):
    if builtin:
        import iterators
        for info in sorted(pkgutil.iter_modules(iterators.__path__), key=lambda i: i.name):
            if not info.name.startswith("_"):
                yield f"iterators.{info.name}", lambda n=f"iterators.{info.name}": _fresh(n)
    for d in extra_dirs:
        if not os.path.isdir(d):
            what = "is not a directory" if os.path.exists(d) else "does not exist"
            raise NotADirectoryError(f"catalog directory {d} {what} (--catalog wants a "
                                     f"directory of *.py catalog modules)")
        for fn in sorted(os.listdir(d)):
            if fn.endswith(".py") and not fn.startswith("_"):
                p = os.path.join(d, fn)
                yield p, lambda p=p: _import_file(p)


def discover(extra_dirs: Iterable[str] = (), *, builtin: bool = True) -> list[Entry]:
    """Every spec of the built-in catalog and the extra directories. A module that fails
    to import or declares nonsense becomes an Entry with `error`, never an exception."""
    entries: list[Entry] = []
    seen: dict[str, str] = {}
    for name, imp in _modules(extra_dirs, builtin):
        try:
            specs = _specs_of(imp(), name)
        except (Exception, SystemExit) as e:  # a broken module is reported, never fatal
            # (not even sys.exit() at import: it would end iterfs silently, maybe with 0)
            why = (f"exits at import (sys.exit({e.code!r}))" if isinstance(e, SystemExit)
                   else f"{type(e).__name__}: {e}")
            entries.append(Entry(None, name, error=why))
            continue
        for s in specs:
            if s.key in seen:
                entries.append(Entry(s, name, error=f"path '{s.key}' already declared by "
                                                    f"{seen[s.key]} (rename one of them)"))
                continue
            seen[s.key] = name
            entries.append(Entry(s, name))
    return entries


def check(entries: list[Entry], btf: BTF) -> list[Entry]:
    """Mark entries whose iterator target the running kernel lacks."""
    targets = set(btf.iter_targets())
    for e in entries:
        if e.spec is not None and not e.error and target_name(e.spec.target) not in targets:
            name = target_name(e.spec.target)
            close = difflib.get_close_matches(name, targets, 1)
            e.unsupported = (f"no iterator target '{name}' in this kernel's BTF "
                             + (f"(did you mean '{close[0]}'?)" if close else
                                "(a newer kernel may have it; iterfs doctor lists the targets here)"))
    return entries


@dataclasses.dataclass(eq=False)
class Loaded:
    """A spec on the running kernel: its program and link (new_iter() per open), and those
    of its unprivileged variant."""
    spec: IterSpec
    program: Program
    link: Link
    variant: tuple[Program, Link] | None = None

    def new_iter(self, privileged: bool = True) -> int:
        link = self.link if privileged or self.variant is None else self.variant[1]
        return link.new_iter().detach()

    def close(self) -> None:
        for prog, link in [(self.program, self.link)] + ([self.variant] if self.variant else []):
            link.close()
            prog.close()


def _load_linked(build, spec: IterSpec, btf: BTF) -> tuple[Program, Link]:
    prog = build(btf).load(btf=btf)  # build: a function of btf -> ProgramSpec
    try:
        return prog, link_iterator(prog, **dict(spec.params))
    except BaseException:
        prog.close()
        raise


def load(spec: IterSpec, btf: BTF, cache=None) -> Loaded:
    """Build (through cache, an iterfs.cache.BuildCache, if given), load and link one spec
    and its unprivileged variant. Raises BTFError/VerifierError/BPFError/ValueError."""
    def via_cache(build, name):
        return build if cache is None else (lambda b: cache.build(build, name, b))

    prog, link = _load_linked(via_cache(spec.build, spec.key), spec, btf)
    loaded = Loaded(spec, prog, link)
    if spec.unprivileged is not None:
        try:
            loaded.variant = _load_linked(via_cache(spec.unprivileged, spec.key + "#unprivileged"),
                                          spec, btf)
        except BaseException:
            loaded.close()
            raise
    return loaded


def read_once(spec: IterSpec, btf: BTF | None = None, **params) -> bytes:
    """Run one iterator session of a spec and return its whole output; params (pid=, tid=,
    ...) override the spec's link parameters."""
    btf = btf if btf is not None else BTF.vmlinux()
    if params:
        spec = dataclasses.replace(spec, params={**spec.params, **params})
    loaded = load(spec, btf)
    try:
        with loaded.link.new_iter() as fd:
            return read_all(fd.fd)
    finally:
        loaded.close()
