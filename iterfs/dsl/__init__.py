"""The seed's instruction DSL (clj-ebpf.dsl) in snake_case, on top of iterfs.asm.

Registers are "r0".."r10", sizes "b" "h" "w" "dw", ops by name ("add", "jne"). Wherever a
jump offset is taken, a label name works too; `label(name)` marks the place.
"""

from __future__ import annotations

from .. import asm
from ..asm import label

__all__ = [
    "mov", "mov_reg", "add", "add_reg", "alu_imm", "alu_reg", "jmp_imm", "jmp_reg", "ja",
    "call", "exit_insn", "ldx", "stx", "st", "ld_map_fd", "label", "assemble", "STOP_MARK",
]

# iter_return_stop leaves this comment on its first instruction; assemble() then adds the
# stopped-session gate at the program's entry (see iterfs.dsl.iter).
STOP_MARK = "iter_return_stop"


def mov(dst, imm: int) -> asm.Insn:
    return asm.mov(dst, imm)


def mov_reg(dst, src) -> asm.Insn:
    return asm.mov(dst, asm.reg(src))


def add(dst, imm: int) -> asm.Insn:
    return asm.alu("add", dst, imm)


def add_reg(dst, src) -> asm.Insn:
    return asm.alu("add", dst, asm.reg(src))


def alu_imm(op, dst, imm: int) -> asm.Insn:
    return asm.alu(op, dst, imm)


def alu_reg(op, dst, src) -> asm.Insn:
    return asm.alu(op, dst, asm.reg(src))


def jmp_imm(op, dst, imm: int, off) -> asm.Insn:
    return asm.jmp(op, dst, imm, off)


def jmp_reg(op, dst, src, off) -> asm.Insn:
    return asm.jmp(op, dst, asm.reg(src), off)


def ja(off) -> asm.Insn:
    return asm.ja(off)


def call(helper) -> asm.Insn:
    return asm.call(helper)


def exit_insn() -> asm.Insn:
    return asm.exit_insn()


def ldx(size, dst, src, off: int) -> asm.Insn:
    return asm.ldx(size, dst, src, off)


def stx(size, dst, src, off: int) -> asm.Insn:
    return asm.stx(size, dst, src, off)


def st(size, dst, off: int, imm: int) -> asm.Insn:
    return asm.st(size, dst, off, imm)


def ld_map_fd(dst, fd: int) -> asm.Insn:
    return asm.ld_map_fd(dst, fd)


def _flatten(items):
    for x in items:
        if isinstance(x, (list, tuple)):
            yield from _flatten(x)
        else:
            yield x


def assemble(insns) -> bytes:
    """Assemble a (nested) list of instructions and labels to bytecode.

    A program that uses iter_return_stop gets the stopped-session gate in front."""
    items = list(_flatten(insns))
    if any(getattr(i, "comment", None) == STOP_MARK for i in items):
        from .iter import stop_gate
        items = stop_gate() + items
    return asm.assemble(items)
