"""iterfs.programs and iterfs.syscall on the real kernel: errors, logs, links, pins, leaks."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
import textwrap

import pytest

from conftest import fd_count
from iterfs import asm, dsl, programs, syscall
from iterfs.dsl import iter as it
from iterfs.dsl.program import Field, IterProgram

pytestmark = pytest.mark.kernel


def pid_printer(fmt: str = "%d\n") -> programs.Program:
    p = IterProgram("task")
    t = p.ctx_ptr("task")
    p.exit_if_null(t)
    p.seq_printf(fmt, Field(t, "pid"))
    return p.build().load()


def test_verifier_rejection_carries_the_log():
    # dereferencing ctx->task without the NULL check the final call needs
    code = dsl.assemble([it.iter_prologue("r6"), it.iter_load_ctx_ptr("r6", "r7", "task"),
                         dsl.ldx("w", "r0", "r7", 0), it.iter_return_continue()])
    with pytest.raises(programs.VerifierError) as e:
        programs.load_iterator_program(code, "task", prog_name="bad_deref")
    err = e.value
    assert err.errno == errno.EACCES
    assert "invalid mem access" in str(err) and "bad_deref" in str(err)
    assert "r0 = *(u32 *)(r7 +0)" in err.log  # the whole log, in the verifier's notation
    assert "\n" not in str(err)


def test_listing_reads_like_the_verifier_log():
    with pid_printer() as prog:
        pass
    # log_level 2 makes the verifier print every instruction it checks: "N: (op) text"
    prog = programs.load_iterator_program(prog.insns, "task", log_level=2, rodata=prog.rodata)
    with prog:
        logged = {}
        for line in prog.log.splitlines():
            m = re.match(r"^(\d+): \(([0-9a-f]{2})\) (.*?)(\s+;.*)?$", line)
            if m:
                logged[int(m.group(1))] = f"{m.group(1)}: ({m.group(2)}) {m.group(3)}"
        mine = dict((int(ln.split(":")[0]), ln) for ln in asm.listing(prog.insns).splitlines())
    assert len(logged) > 10
    # the verifier names maps by their kernel id where iterfs has only the fd_array index
    differ = {i for i in logged if logged[i] != mine.get(i)}
    # the verifier prints map value loads as the resolved kernel address, iterfs by fd_array index
    assert all("map[idx:" in mine[i] and "(18)" in logged[i] for i in differ), \
        [(logged[i], mine.get(i)) for i in differ]


def test_unknown_target_is_a_clear_error():
    code = it.minimal_task_iterator()
    with pytest.raises(programs.UnknownTarget, match="no BPF iterator target 'no_such_thing'"):
        programs.load_iterator_program(code, "no-such-thing")


def test_missing_capabilities_are_named(tmp_path):
    # A root process without CAP_BPF/CAP_PERFMON/CAP_SYS_ADMIN (dropped from the bounding set
    # by setpriv) stands for an unprivileged one: the interpreter lives under /root here.
    script = textwrap.dedent("""
        import sys
        from iterfs import programs
        from iterfs.dsl import iter as it
        try:
            programs.load_iterator_program(it.minimal_task_iterator(), "task")
        except OSError as e:
            print(e); sys.exit(3)
    """)
    r = subprocess.run(["setpriv", "--bounding-set", "-bpf,-perfmon,-sys_admin", "--",
                        sys.executable, "-c", script], capture_output=True, text=True,
                       cwd=tmp_path, timeout=60)
    assert r.returncode == 3, r.stderr
    assert "Operation not permitted" in r.stdout
    assert "lacks CAP_BPF, CAP_PERFMON" in r.stdout


def test_helper_ids_match_the_running_kernel(vmlinux):
    kernel = {n.removeprefix("BPF_FUNC_"): v for n, v in vmlinux.enum_values("bpf_func_id").items()
              if n.startswith("BPF_FUNC_")}
    ours = {h.name: int(h) for h in asm.Helper}
    assert ours == kernel


def test_no_fd_leak_over_1000_sessions():
    with pid_printer() as prog:
        it0 = programs.create_iterator(prog, iter_type="task")
        it0.read()
        programs.close_iterator(it0)
        base = fd_count()
        for _ in range(1000):
            with programs.with_iterator(prog, iter_type="task") as i:
                assert i.read()
        assert fd_count() == base


def test_link_update_swaps_the_program():
    with pid_printer("%d\n") as a, pid_printer("pid=%d\n") as b, programs.link_iterator(a) as link:
        with link.new_iter() as fd:
            assert programs.read_all(fd.fd).startswith(b"2\n")
        link.update(b)
        with link.new_iter() as fd:
            assert programs.read_all(fd.fd).startswith(b"pid=2\n")


def test_pin_read_and_unpin(tmp_path):
    root = f"{programs.BPFFS}/iterfs-test-{os.getpid()}"
    path = f"{root}/a/b/tasks"
    with pid_printer() as prog, programs.link_iterator(prog) as link:
        try:
            programs.pin(link.fd, path)
            programs.pin(link.fd, path)  # a stale pin is replaced
            with open(path, "rb") as f:   # each open of the pin is a fresh session
                first = f.read()
            out = subprocess.run(["cat", path], capture_output=True, check=True).stdout
            assert first.split(b"\n")[0] == out.split(b"\n")[0] == b"2"
            with syscall.obj_get(path) as again:
                info, target = syscall.link_info(again.fd)
                assert target == "task" and info.id == link.id
        finally:
            programs.unpin(path, prune_to=programs.BPFFS)
    assert not os.path.exists(root)


def test_ids_and_info_agree():
    with pid_printer() as prog, programs.link_iterator(prog) as link:
        assert prog.id in syscall.ids("prog")
        assert link.id in syscall.ids("link")
        info = syscall.prog_info(prog.fd.fd)
        assert info.type == programs.BPF_PROG_TYPE_TRACING and info.name == b"iterfs_task"
        with syscall.get_fd_by_id("prog", prog.id) as fd:
            assert syscall.prog_info(fd.fd).id == prog.id


def test_rodata_map_is_frozen_and_read_only():
    with programs.rodata_map(b"hello\0") as m:
        info = syscall.map_info(m.fd)
        assert info.map_flags & programs.BPF_F_RDONLY_PROG
        with pytest.raises(syscall.BPFError) as e:
            syscall.map_update_elem(m.fd, b"\0\0\0\0", b"world\0")
        assert e.value.errno == errno.EPERM and "MAP_UPDATE_ELEM" in str(e.value)
        assert syscall.map_lookup_elem(m.fd, b"\0\0\0\0", 6) == b"hello\0"
