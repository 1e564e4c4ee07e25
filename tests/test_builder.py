"""IterProgram pieces on the real kernel, checked against Python's own formatting."""

from __future__ import annotations

import os

import pytest

from iterfs import asm, programs
from iterfs.dsl.program import Field, IterProgram

pytestmark = pytest.mark.kernel

VALUES = [0, 1, 9, 10, 99, 100, 12345, -1, -9, -10, -123456, 2**31, 2**40 + 5, 10**18, -(10**17)]


def per_object_values(p: IterProgram, values: list[int], reg: str) -> None:
    """reg = values[meta->seq_num]; later objects exit."""
    p.emit(asm.ldx("dw", "r2", p.meta, p.btf.offsetof("bpf_iter_meta", "seq_num")))
    for i, v in enumerate(values):
        skip = p.label_name("v")
        p.emit(asm.jmp("jne", "r2", i, skip), asm.ld_imm64(reg, v & (2**64 - 1)), asm.label(skip))
    p.emit(asm.jmp("jlt", "r2", len(values), "in_range"), asm.mov("r0", 0), asm.exit_insn(),
           asm.label("in_range"))


def run(p: IterProgram) -> list[str]:
    with p.build().load() as prog, programs.with_iterator(prog) as it:
        return it.read().decode().splitlines()


@pytest.mark.parametrize("signed", [True, False])
def test_digits_is_the_printed_width(signed):
    p = IterProgram("task")
    t = p.ctx_ptr("task")
    p.exit_if_null(t)
    p.release(t)
    v, n = p.reg(), p.reg()
    # digits() covers values below 10**19 (negative ones as u64 are not)
    values = VALUES if signed else [x for x in VALUES if 0 <= x < 10**19]
    per_object_values(p, values, v)
    p.digits(n, v, signed=signed)
    p.seq_printf("%d %" + ("lld" if signed else "llu") + "\n", n, v)
    rows = [ln.split() for ln in run(p)]
    assert len(rows) == len(values)
    for (width, printed), value in zip(rows, values):
        assert int(width) == len(printed), (value, printed)
        if signed or value >= 0:
            assert printed == str(value)


def test_pad_makes_seq_pad_lines():
    p = IterProgram("task")
    t = p.ctx_ptr("task")
    p.exit_if_null(t)
    n = p.reg()
    p.load("r2", Field(t, "pid"))
    p.digits(n, "r2", signed=True)
    p.emit(asm.alu("add", n, 4))  # "pid=" before the number
    p.seq_printf("pid=%d%s|\n", Field(t, "pid"), p.pad(20, n))
    lines = run(p)
    assert lines and all(len(ln) == 21 and ln.endswith("|") for ln in lines)
    assert f"pid={os.getpid()}".ljust(20) + "|" in lines


def test_session_state_is_per_session():
    p = IterProgram("task")
    st = p.session()
    t = p.ctx_ptr("task")
    p.exit_if_null(t)
    p.emit(asm.ldx("dw", "r1", st, 0), asm.alu("add", "r1", 1), asm.stx("dw", st, "r1", 0))
    p.seq_printf("%d\n", "r1")
    with p.build().load() as prog, programs.link_iterator(prog) as link:
        for _ in range(3):  # each session counts from 1 again
            with link.new_iter() as fd:
                counts = [int(x) for x in programs.read_all(fd.fd).split()]
            assert counts == list(range(1, len(counts) + 1))
