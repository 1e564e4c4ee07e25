"""Built programs cached on disk, so a start does not assemble the catalog again.

A built program is a pure function of the kernel's BTF, the iterfs sources and the catalog
module that declares it; the cache key hashes all three, so any change builds afresh.
Entries are small JSON files of ProgramSpec fields under /var/cache/iterfs (or
$ITERFS_CACHE); a broken or unwritable cache is never fatal: a damaged entry is rebuilt,
a directory that cannot be used is reported once (one warning line) and skipped."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import logging
import json
import os
import tempfile
import threading

from .btf import BTF
from .dsl.program import ProgramSpec

log = logging.getLogger("iterfs")

DEFAULT_DIR = os.environ.get("ITERFS_CACHE", "/var/cache/iterfs")


@functools.lru_cache(maxsize=None)
def _sources_digest() -> str:
    """Every iterfs source file: the assembler, builder and loader a program goes through."""
    root = os.path.dirname(os.path.abspath(__file__))
    h = hashlib.sha256()
    for d, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for f in sorted(files):
            if f.endswith(".py"):
                with open(os.path.join(d, f), "rb") as fh:
                    h.update(f.encode() + b"\0" + fh.read())
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def _file_digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class BuildCache:
    def __init__(self, directory: str = DEFAULT_DIR):
        self.directory = directory
        self._warned = False
        self._lock = threading.Lock()

    def _unusable(self, e: OSError) -> None:
        """The directory itself cannot be used (not a directory, not writable): say so
        once, in one line that says what to do; every build still works, uncached."""
        with self._lock:
            if self._warned:
                return
            self._warned = True
        log.warning("build cache %s is unusable (%s): programs are built afresh at every "
                    "start (point ITERFS_CACHE at a writable directory, or set it empty to "
                    "turn the cache off)", self.directory, e.strerror or e)

    def _key(self, build, name: str, btf: BTF) -> str | None:
        try:
            module_file = inspect.getsourcefile(build)
        except TypeError:
            return None
        if module_file is None:
            return None
        h = hashlib.sha256()
        for part in (btf.digest, _sources_digest(), _file_digest(module_file), name,
                     getattr(build, "__qualname__", "")):
            h.update(part.encode() + b"\0")
        return h.hexdigest()

    def build(self, build, name: str, btf: BTF) -> ProgramSpec:
        """build(btf), from the cache when the same inputs built it before."""
        key = self._key(build, name, btf)
        path = os.path.join(self.directory, f"{key}.json") if key else None
        if path:
            try:
                with open(path) as f:
                    fields = json.load(f)
                return ProgramSpec(fields["target"], bytes.fromhex(fields["bytecode"]),
                                   bytes.fromhex(fields["rodata"]), fields["name"],
                                   bool(fields["sleepable"]))
            except FileNotFoundError:
                pass
            except (NotADirectoryError, PermissionError) as e:  # the directory, not the entry
                self._unusable(e)
            except Exception as e:  # a damaged entry: rebuild and overwrite it
                log.debug("cache entry %s unreadable: %s", path, e)
        spec = build(btf)
        if path:
            self._store(path, spec)
        return spec

    # the iterator targets of a BTF, so a start that builds nothing never indexes it
    def _targets_path(self, btf: BTF) -> str:
        return os.path.join(self.directory, f"targets-{btf.digest}.json")

    def prime(self, btf: BTF) -> bool:
        """Give btf its iterator targets from the cache; False if there are none yet."""
        try:
            with open(self._targets_path(btf)) as f:
                btf.prime_targets({str(k): int(v) for k, v in json.load(f).items()})
            return True
        except FileNotFoundError:
            return False
        except (OSError, ValueError, AttributeError) as e:
            log.debug("cached targets unreadable: %s", e)
            return False

    def remember_targets(self, btf: BTF) -> None:
        path = self._targets_path(btf)
        if not os.path.exists(path):
            self._write(path, btf.target_ids())

    def _store(self, path: str, spec: ProgramSpec) -> None:
        self._write(path, dict(target=spec.target, bytecode=spec.bytecode.hex(),
                               rodata=spec.rodata.hex(), name=spec.name,
                               sleepable=spec.sleepable))

    def _write(self, path: str, fields: dict) -> None:
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory)
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(fields, f)
                os.replace(tmp, path)
            except BaseException:  # a full disk: no half-written file left behind
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as e:
            self._unusable(e)
