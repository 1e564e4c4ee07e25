"""The on-disk cache of built programs: hits give the same program, any input change builds
again, damage is ignored."""

from __future__ import annotations

import os

import pytest

from iterfs.cache import BuildCache
from iterfs.dsl.program import Field, IterProgram

pytestmark = pytest.mark.kernel

CALLS = []


def build_pids(btf):
    CALLS.append(1)
    p = IterProgram("task", btf=btf)
    t = p.ctx_ptr("task")
    p.exit_if_null(t)
    p.seq_printf("%d\n", Field(t, "pid"))
    return p.build()


def test_hits_misses_and_damage(tmp_path, vmlinux):
    cache = BuildCache(str(tmp_path))
    CALLS.clear()
    first = cache.build(build_pids, "pids", vmlinux)
    again = cache.build(build_pids, "pids", vmlinux)
    assert len(CALLS) == 1 and again == first          # a hit, the same program
    other = cache.build(build_pids, "other", vmlinux)
    assert len(CALLS) == 2 and other == first           # another name: built again
    for f in os.listdir(tmp_path):
        (tmp_path / f).write_text("{not json")
    assert cache.build(build_pids, "pids", vmlinux) == first and len(CALLS) == 3
    with again.load(btf=vmlinux):                       # what comes back loads
        pass


def test_unwritable_cache_still_builds(vmlinux, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = BuildCache(str(blocker / "sub"))            # cannot be created: ignored
    CALLS.clear()
    assert cache.build(build_pids, "pids", vmlinux).bytecode
    assert cache.build(build_pids, "pids", vmlinux).bytecode and len(CALLS) == 2
