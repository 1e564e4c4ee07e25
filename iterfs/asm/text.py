"""Disassembler in the kernel's notation (kernel/bpf/disasm.c), and its parser."""

from __future__ import annotations

from collections.abc import Mapping

from .helpers import Helper
from .insn import MASK32, MASK64, Insn, decode
from .link import flatten, label_slots, link
from .opcodes import (
    ALU_SYMBOLS, JMP_SYMBOLS, LD_IMM64, ALUOp, AtomicOp, Class, Endian,
    JumpOp, Mode, PseudoSrc, Size, Source,
)
from .parser import parse  # noqa: F401  (the parser lives in parser.py)

# The text follows print_bpf_insn() of Linux 6.18 kernel/bpf/disasm.c without
# callbacks and with allow_ptr_leaks, minus the "(%02x) " opcode prefix that
# listing() adds back. Immediates print as disasm.c does: ALU, store and call
# immediates in signed decimal (%d), conditional-jump immediates as 0x%x of the
# u32, offsets as %+d, ld_imm64 constants as 0x%llx. A 6.18 verifier log
# (log_level 2) of a program using every form printed the same text, except for
# map loads, where the verifier shows the resolved map pointer.
#
# Choices where disasm.c defers to a callback or loses information:
# - ld_imm64 with a pseudo src_reg: disasm.c prints the bare constant (0x%llx)
#   unless a cb_imm is given, which would lose src_reg. We print what bpftool's
#   cb_imm (tools/bpf/bpftool/xlated_dumper.c print_imm) prints, with "fd"/"idx"
#   where bpftool says "id", since our programs are not loaded yet:
#     map[fd:5]  map[fd:5][0]+8  map[idx:2]  map[idx:2][0]+8  subprog[+3]
#   and, with no bpftool form, btf_id[123] or btf_id[123][fd:4] (module BTF).
#   A plain constant prints as the kernel does, "r0 = 0x1234" (no llvm " ll";
#   parse() accepts it).
# - call of a kfunc: disasm.c prints "call kernel-function#<btf_id>"; a nonzero
#   off (fd_array index of a module BTF) is appended as " off:<n>".
# - an unresolved label target prints as <name> where the offset would be.

_LDST = {Size.W: "u32", Size.H: "u16", Size.B: "u8", Size.DW: "u64"}
_LDSX = {Size.W: "s32", Size.H: "s16", Size.B: "s8"}
_SIGNED = {ALUOp.DIV: "s/=", ALUOp.MOD: "s%="}
_MOVSX = {8: "(s8)", 16: "(s16)", 32: "(s32)"}
_ATOMIC_ALU = {AtomicOp.ADD: "add", AtomicOp.AND: "and", AtomicOp.OR: "or", AtomicOp.XOR: "xor"}
_JMP_STR = {JumpOp.JA: "jmp", JumpOp.CALL: "call", JumpOp.EXIT: "exit", **JMP_SYMBOLS}


def _s32(v: int) -> int:
    v &= MASK32
    return v - (1 << 32) if v & (1 << 31) else v


def _pc(insn: Insn, rel: int) -> str:
    return f"<{insn.target}>" if insn.target is not None else f"pc{rel:+d}"


def _imm64_text(insn: Insn) -> str:
    v = insn.imm & MASK64
    lo, hi = v & MASK32, v >> 32
    src = insn.src
    if src == PseudoSrc.MAP_FD and not hi:
        return f"map[fd:{lo}]"
    if src == PseudoSrc.MAP_VALUE:
        return f"map[fd:{lo}][0]+{hi}"
    if src == PseudoSrc.MAP_IDX and not hi:
        return f"map[idx:{lo}]"
    if src == PseudoSrc.MAP_IDX_VALUE:
        return f"map[idx:{lo}][0]+{hi}"
    if src == PseudoSrc.BTF_ID:
        return f"btf_id[{lo}]" + (f"[fd:{hi}]" if hi else "")
    if src == PseudoSrc.FUNC and not hi:
        return f"subprog[<{insn.target}>]" if insn.target else f"subprog[{_s32(lo):+d}]"
    return f"0x{v:x}"


def _alu_text(insn: Insn) -> str:
    c, d, s = insn.op, insn.dst, insn.src
    cls, op = c & 0x07, c & 0xF0
    p = "w" if cls == Class.ALU else "r"
    if op == ALUOp.END:
        if cls == Class.ALU64:
            return f"r{d} = bswap{insn.imm} r{d}"
        return f"r{d} = {'be' if c & Endian.BE else 'le'}{insn.imm} r{d}"
    if op == ALUOp.NEG:
        return f"{p}{d} = -{p}{d}"
    if c == Class.ALU64 | ALUOp.MOV | Source.X and insn.off == 1:
        imm = insn.imm & MASK32
        return f"r{d} = addr_space_cast(r{s}, {imm >> 16}, {imm & 0xFFFF})"
    if c == Class.ALU64 | ALUOp.MOV | Source.X and insn.off == -1:
        return f"r{d} = &(void __percpu *)(r{s})"
    sym = (_SIGNED.get(op) if insn.off == 1 else None) or ALU_SYMBOLS.get(op, "(null)")
    if c & Source.X:
        sx = _MOVSX.get(insn.off, "") if op == ALUOp.MOV else ""
        return f"{p}{d} {sym} {sx}{p}{s}"
    return f"{p}{d} {sym} {insn.imm}"


def _mem(sz: str, r: int, off: int) -> str:
    return f"({sz} *)(r{r} {off:+d})"


def _stx_text(insn: Insn) -> str:
    c, d, s, off, imm = insn.op, insn.dst, insn.src, insn.off, insn.imm
    sz = Size(c & 0x18)
    u = _LDST[sz]
    if c & 0xE0 == Mode.MEM:
        return f"*{_mem(u, d, off)} = r{s}"
    if c & 0xE0 != Mode.ATOMIC:
        return f"BUG_{c:02x}"
    w = "64" if sz == Size.DW else ""
    if imm in _ATOMIC_ALU:
        return f"lock *{_mem(u, d, off)} {ALU_SYMBOLS[ALUOp(imm)]} r{s}"
    if imm & ~AtomicOp.FETCH in _ATOMIC_ALU and imm & AtomicOp.FETCH:
        name = _ATOMIC_ALU[imm & ~AtomicOp.FETCH]
        return f"r{s} = atomic{w}_fetch_{name}({_mem(u, d, off)}, r{s})"
    if imm == AtomicOp.CMPXCHG:
        return f"r0 = atomic{w}_cmpxchg({_mem(u, d, off)}, r0, r{s})"
    if imm == AtomicOp.XCHG:
        return f"r{s} = atomic{w}_xchg({_mem(u, d, off)}, r{s})"
    if imm == AtomicOp.LOAD_ACQ:
        return f"r{d} = load_acquire({_mem(u, s, off)})"
    if imm == AtomicOp.STORE_REL:
        return f"store_release({_mem(u, d, off)}, r{s})"
    return f"BUG_{c:02x}"


def _jmp_text(insn: Insn) -> str:
    c, d, s = insn.op, insn.dst, insn.src
    cls, op = c & 0x07, c & 0xF0
    if op == JumpOp.CALL:
        if s == PseudoSrc.CALL:
            return f"call {_pc(insn, insn.imm)}"
        if s == 0 and insn.imm in Helper._value2member_map_:
            name = Helper(insn.imm).func_name
        elif s == PseudoSrc.KFUNC_CALL:
            name = "kernel-function"
        else:
            name = "unknown"
        extra = f" off:{insn.off}" if s == PseudoSrc.KFUNC_CALL and insn.off else ""
        return f"call {name}#{insn.imm}{extra}"
    if c == Class.JMP | JumpOp.JA:
        return f"goto {_pc(insn, insn.off)}"
    if c == Class.JMP | JumpOp.JCOND and s == 0:
        return f"may_goto {_pc(insn, insn.off)}"
    if c == Class.JMP32 | JumpOp.JA:
        return f"gotol {_pc(insn, insn.imm)}"
    if c == Class.JMP | JumpOp.EXIT:
        return "exit"
    p = "w" if cls == Class.JMP32 else "r"
    sym = _JMP_STR.get(op, "(null)")
    rhs = f"{p}{s}" if c & Source.X else f"0x{insn.imm & MASK32:x}"
    return f"if {p}{d} {sym} {rhs} goto {_pc(insn, insn.off)}"


def disassemble_insn(insn: Insn) -> str:
    """One instruction in disasm.c notation, without the "(xx) " prefix."""
    c = insn.op
    cls = c & 0x07
    if cls in (Class.ALU, Class.ALU64):
        return _alu_text(insn)
    if cls in (Class.JMP, Class.JMP32):
        return _jmp_text(insn)
    if cls == Class.STX:
        return _stx_text(insn)
    sz, mode = Size(c & 0x18), c & 0xE0
    if cls == Class.ST:
        if mode == Mode.MEM:
            return f"*{_mem(_LDST[sz], insn.dst, insn.off)} = {insn.imm}"
        return "nospec" if mode == 0xC0 else f"BUG_st_{c:02x}"
    if cls == Class.LDX:
        if mode == Mode.MEM:
            return f"r{insn.dst} = *{_mem(_LDST[sz], insn.src, insn.off)}"
        if mode == Mode.MEMSX:
            return f"r{insn.dst} = *{_mem(_LDSX.get(sz, '(null)'), insn.src, insn.off)}"
        return f"BUG_ldx_{c:02x}"
    # class LD
    if mode == Mode.ABS:
        return f"r0 = *({_LDST[sz]} *)skb[{insn.imm}]"
    if mode == Mode.IND:
        return f"r0 = *({_LDST[sz]} *)skb[r{insn.src} + {insn.imm}]"
    if c == LD_IMM64:
        return f"r{insn.dst} = {_imm64_text(insn)}"
    return f"BUG_ld_{c:02x}"


def _insns(code) -> list[Insn]:
    if isinstance(code, (bytes, bytearray, memoryview)):
        return decode(bytes(code))
    return [x for x in flatten(code) if isinstance(x, Insn)]


def disassemble(code) -> list[str]:
    """One string per instruction (ld_imm64 is one), from bytes or Insns."""
    return [disassemble_insn(i) for i in _insns(code)]


def listing(code, *, labels: Mapping | None = None) -> str:
    """Verifier-log style text: "0: (bf) r6 = r1", one line per instruction.

    code is bytes or a list of Insns and Labels (linked first). labels maps slot
    to name (or name to slot); each prints as a "name:" line before its slot.
    An Insn comment is appended as "  ; comment".
    """
    if isinstance(code, (bytes, bytearray, memoryview)):
        insns, names = decode(bytes(code)), {}
    else:
        insns, names = link(code), label_slots(code)
    by_slot: dict[int, list[str]] = {}
    for name, slot in names.items():
        by_slot.setdefault(slot, []).append(name)
    for k, v in (labels or {}).items():
        slot, name = (k, v) if isinstance(k, int) else (v, k)
        if name not in by_slot.get(slot, []):
            by_slot.setdefault(slot, []).append(name)
    lines, slot = [], 0
    for insn in insns:
        lines += [f"{n}:" for n in by_slot.pop(slot, [])]
        text = disassemble_insn(insn)
        line = f"{slot}: {text}" if text.startswith("BUG_") else f"{slot}: ({insn.op:02x}) {text}"
        if insn.comment:
            line += f"  ; {insn.comment}"
        lines.append(line)
        slot += insn.slots
    for s in sorted(by_slot):
        lines += [f"{n}:" for n in by_slot[s]]
    return "\n".join(lines) + ("\n" if lines else "")
