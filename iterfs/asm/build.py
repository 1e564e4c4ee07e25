"""Builders: one function per instruction form, each returning an Insn."""

from __future__ import annotations

from .helpers import helper as _helper
from .insn import MASK32, MASK64, Insn, Label
from .opcodes import (
    LD_IMM64, ALUOp, AsmError, AtomicOp, Class, Endian, JumpOp, Mode, PseudoSrc,
    Size, Source, alu_op, atomic_op, is_reg, jump_op, reg,
)
from .opcodes import size as _size  # the builders' parameter is named size


def _imm(x) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise AsmError(f"bad immediate {x!r} (want an int)")
    return int(x)


def _target(target) -> tuple[int, str | None]:
    """A jump target: a slot offset (int) or a label (str or Label)."""
    if isinstance(target, Label):
        return 0, target.name
    if isinstance(target, str):
        if not target:
            raise AsmError("empty label name")
        return 0, target
    return _imm(target), None


# -- ALU --------------------------------------------------------------------


def alu(op, dst, src_or_imm, *, alu32: bool = False, off: int = 0) -> Insn:
    """dst op= src_or_imm; a register source is BPF_X, an int BPF_K.

    off=1 with div/mod is the signed sdiv/smod (cpu v4).
    """
    cls = Class.ALU if alu32 else Class.ALU64
    o = alu_op(op)
    d = reg(dst)
    if is_reg(src_or_imm):
        return Insn(cls | o | Source.X, d, reg(src_or_imm), _imm(off), 0)
    return Insn(cls | o | Source.K, d, 0, _imm(off), _imm(src_or_imm))


def mov(dst, src_or_imm, *, alu32: bool = False) -> Insn:
    return alu(ALUOp.MOV, dst, src_or_imm, alu32=alu32)


def movsx(dst, src, bits: int, *, alu32: bool = False) -> Insn:
    """dst = (s8|s16|s32)src: MOV|X with off = bits."""
    if bits not in ((8, 16) if alu32 else (8, 16, 32)):
        raise AsmError(f"bad movsx width {bits!r}")
    cls = Class.ALU if alu32 else Class.ALU64
    return Insn(cls | ALUOp.MOV | Source.X, reg(dst), reg(src), bits, 0)


def neg(dst, *, alu32: bool = False) -> Insn:
    cls = Class.ALU if alu32 else Class.ALU64
    return Insn(cls | ALUOp.NEG | Source.K, reg(dst))


def endian(dst, bits: int, order: str = "le") -> Insn:
    """dst = le|be<bits> dst (class ALU), or dst = bswap<bits> dst (ALU64)."""
    if bits not in (16, 32, 64):
        raise AsmError(f"bad byte-swap width {bits!r}")
    order = str(order).lower()
    if order == "bswap":
        return Insn(Class.ALU64 | ALUOp.END | Endian.LE, reg(dst), 0, 0, bits)
    if order not in ("le", "be"):
        raise AsmError(f"bad byte order {order!r} (want le, be or bswap)")
    return Insn(Class.ALU | ALUOp.END | Endian[order.upper()], reg(dst), 0, 0, bits)


def addr_space_cast(dst, src, dst_as: int, src_as: int) -> Insn:
    """dst = addr_space_cast(src, dst_as, src_as) (arena, 6.9): MOV|X, off=1."""
    imm = ((dst_as & 0xFFFF) << 16) | (src_as & 0xFFFF)
    imm = imm - (1 << 32) if imm & (1 << 31) else imm
    return Insn(Class.ALU64 | ALUOp.MOV | Source.X, reg(dst), reg(src), 1, imm)


# -- jumps and calls --------------------------------------------------------


def jmp(op, dst, src_or_imm, target, *, jmp32: bool = False) -> Insn:
    """if dst op src_or_imm goto target (slot offset or label)."""
    cls = Class.JMP32 if jmp32 else Class.JMP
    o = jump_op(op)
    if o in (JumpOp.JA, JumpOp.CALL, JumpOp.EXIT, JumpOp.JCOND):
        raise AsmError(f"{o.name.lower()} is not a conditional jump")
    off, name = _target(target)
    if is_reg(src_or_imm):
        return Insn(cls | o | Source.X, reg(dst), reg(src_or_imm), off, 0, name)
    return Insn(cls | o | Source.K, reg(dst), 0, off, _imm(src_or_imm), name)


def ja(target) -> Insn:
    """goto target (16-bit offset)."""
    off, name = _target(target)
    return Insn(Class.JMP | JumpOp.JA, 0, 0, off, 0, name)


def gotol(target) -> Insn:
    """gotol target: JMP32|JA with the 32-bit offset in imm (cpu v4)."""
    imm, name = _target(target)
    return Insn(Class.JMP32 | JumpOp.JA, 0, 0, 0, imm, name)


def may_goto(target) -> Insn:
    """may_goto target: JMP|JCOND, src_reg 0 (6.9)."""
    off, name = _target(target)
    return Insn(Class.JMP | JumpOp.JCOND, 0, 0, off, 0, name)


def call(helper) -> Insn:
    """call a helper (Helper, id or name)."""
    return Insn(Class.JMP | JumpOp.CALL, 0, 0, 0, int(_helper(helper)))


def call_kfunc(btf_id: int, *, off: int = 0) -> Insn:
    """call a kfunc by BTF id; off indexes fd_array for a module BTF (0: vmlinux)."""
    return Insn(Class.JMP | JumpOp.CALL, 0, PseudoSrc.KFUNC_CALL, _imm(off), _imm(btf_id))


def call_local(target) -> Insn:
    """bpf-to-bpf call; the slot offset goes in imm."""
    imm, name = _target(target)
    return Insn(Class.JMP | JumpOp.CALL, 0, PseudoSrc.CALL, 0, imm, name)


def exit_insn() -> Insn:
    return Insn(Class.JMP | JumpOp.EXIT)


# -- memory -----------------------------------------------------------------


def ldx(size, dst, src, off: int) -> Insn:
    """dst = *(size *)(src + off)"""
    return Insn(Class.LDX | _size(size) | Mode.MEM, reg(dst), reg(src), _imm(off))


def ldxs(size, dst, src, off: int) -> Insn:
    """dst = *(s8|s16|s32 *)(src + off), sign-extending (cpu v4)."""
    s = _size(size)
    if s == Size.DW:
        raise AsmError("sign-extending load has no dw form")
    return Insn(Class.LDX | s | Mode.MEMSX, reg(dst), reg(src), _imm(off))


def stx(size, dst, src, off: int) -> Insn:
    """*(size *)(dst + off) = src"""
    return Insn(Class.STX | _size(size) | Mode.MEM, reg(dst), reg(src), _imm(off))


def st(size, dst, off: int, imm: int) -> Insn:
    """*(size *)(dst + off) = imm"""
    return Insn(Class.ST | _size(size) | Mode.MEM, reg(dst), 0, _imm(off), _imm(imm))


def atomic(size, op, dst, src, off: int, *, fetch: bool = False) -> Insn:
    """Atomic op on *(size *)(dst + off) with src; xchg/cmpxchg always fetch.

    load_acq: dst = *(src + off); store_rel: *(dst + off) = src (any size).
    """
    s = _size(size)
    imm = int(atomic_op(op))
    if imm in (AtomicOp.ADD, AtomicOp.OR, AtomicOp.AND, AtomicOp.XOR) and fetch:
        imm |= AtomicOp.FETCH
    if imm not in (AtomicOp.LOAD_ACQ, AtomicOp.STORE_REL) and s not in (Size.W, Size.DW):
        raise AsmError(f"atomic op {imm:#x} needs size w or dw")
    return Insn(Class.STX | s | Mode.ATOMIC, reg(dst), reg(src), _imm(off), imm)


def load_acquire(size, dst, src, off: int) -> Insn:
    return atomic(size, AtomicOp.LOAD_ACQ, dst, src, off)


def store_release(size, dst, src, off: int) -> Insn:
    return atomic(size, AtomicOp.STORE_REL, dst, src, off)


def ld_abs(size, imm: int) -> Insn:
    """r0 = *(size *)skb[imm] (legacy packet access)."""
    return Insn(Class.LD | _size(size) | Mode.ABS, 0, 0, 0, _imm(imm))


def ld_ind(size, src, imm: int) -> Insn:
    """r0 = *(size *)skb[src + imm] (legacy packet access)."""
    return Insn(Class.LD | _size(size) | Mode.IND, 0, reg(src), 0, _imm(imm))


# -- ld_imm64 ---------------------------------------------------------------


def ld_imm64(dst, imm: int, *, src: int = 0) -> Insn:
    """dst = 64-bit imm (two slots); src is a PseudoSrc for map/BTF/func loads."""
    v = _imm(imm)
    if not -(1 << 63) <= v <= MASK64:
        raise AsmError(f"ld_imm64 constant {v} outside 64 bits")
    s = int(src)
    if not 0 <= s <= 15:
        raise AsmError(f"bad ld_imm64 src {src!r}")
    return Insn(LD_IMM64, reg(dst), s, 0, v & MASK64)


def _lohi(lo: int, hi: int) -> int:
    return (_imm(lo) & 0xFFFFFFFF) | ((_imm(hi) & 0xFFFFFFFF) << 32)


def ld_map_fd(dst, fd: int) -> Insn:
    return ld_imm64(dst, _lohi(fd, 0), src=PseudoSrc.MAP_FD)


def ld_map_value(dst, fd: int, off: int = 0) -> Insn:
    """dst = &map_value(fd) + off: imm = fd, second slot's imm = off."""
    return ld_imm64(dst, _lohi(fd, off), src=PseudoSrc.MAP_VALUE)


def ld_map_idx(dst, idx: int) -> Insn:
    return ld_imm64(dst, _lohi(idx, 0), src=PseudoSrc.MAP_IDX)


def ld_map_idx_value(dst, idx: int, off: int = 0) -> Insn:
    return ld_imm64(dst, _lohi(idx, off), src=PseudoSrc.MAP_IDX_VALUE)


def ld_btf_id(dst, btf_id: int, *, btf_fd: int = 0) -> Insn:
    """dst = &kernel variable btf_id (btf_fd: module BTF fd, 0 for vmlinux)."""
    return ld_imm64(dst, _lohi(btf_id, btf_fd), src=PseudoSrc.BTF_ID)


def ld_func(dst, target) -> Insn:
    """dst = address of the subprog at target (callback for bpf_loop & co)."""
    imm, name = _target(target)
    return Insn(LD_IMM64, reg(dst), PseudoSrc.FUNC, 0, imm & MASK32, name)
