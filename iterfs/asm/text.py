"""Disassembler in the kernel's notation (kernel/bpf/disasm.c), and its parser."""

from __future__ import annotations

import re
from collections.abc import Mapping

from .helpers import Helper
from .insn import MASK32, MASK64, Insn, Label, decode
from .link import flatten, label_slots, link
from .opcodes import (
    ALU_SYMBOLS, JMP_SYMBOLS, LD_IMM64, ALUOp, AsmError, AtomicOp, Class, Endian,
    JumpOp, Mode, PseudoSrc, Size, Source,
)

# The text follows print_bpf_insn() of Linux 6.18 kernel/bpf/disasm.c without
# callbacks and with allow_ptr_leaks, minus the "(%02x) " opcode prefix that
# listing() adds back. Immediates print as disasm.c does: ALU, store and call
# immediates in signed decimal (%d), conditional-jump immediates as 0x%x of the
# u32, offsets as %+d, ld_imm64 constants as 0x%llx.
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


# -- parser -------------------------------------------------------------------

_NUM = r"[+-]?(?:0x[0-9a-fA-F]+|\d+)"
_REG = r"([rw])(\d+)"
_TGT = r"(pc\s*[+-]\s*\d+|<[^<>\s]+>|[A-Za-z_.$][\w.$]*)"
_MEMX = r"\(\s*(u8|u16|u32|u64|s8|s16|s32)\s*\*\s*\)\s*\(\s*r(\d+)\s*([+-])\s*(0x[0-9a-fA-F]+|\d+)\s*\)"
_SIZES = {"u8": Size.B, "u16": Size.H, "u32": Size.W, "u64": Size.DW,
          "s8": Size.B, "s16": Size.H, "s32": Size.W}
_ALU_BY_SYM = {v: k for k, v in ALU_SYMBOLS.items()}
_ALU_BY_SYM.update({"s/=": ALUOp.DIV, "s%=": ALUOp.MOD})
_JMP_BY_SYM = {v: k for k, v in JMP_SYMBOLS.items()}
_ALU_SYM_RE = "|".join(re.escape(s) for s in sorted(_ALU_BY_SYM, key=len, reverse=True))
_JMP_SYM_RE = "|".join(re.escape(s) for s in sorted(_JMP_BY_SYM, key=len, reverse=True))
_FETCH = {"add": AtomicOp.ADD, "and": AtomicOp.AND, "or": AtomicOp.OR, "xor": AtomicOp.XOR}


def _num(s: str) -> int:
    s = s.replace(" ", "")
    neg = s.startswith("-")
    s = s.lstrip("+-")
    v = int(s, 16) if s.lower().startswith("0x") else int(s, 10)
    return -v if neg else v


def _imm32(s: str) -> int:
    """A 32-bit immediate: signed decimal, or hex of the u32 (wrapped to s32)."""
    v = _num(s)
    if (1 << 31) <= v <= MASK32:
        v -= 1 << 32
    return v


def _memop(m, i: int) -> tuple[Size, bool, int, int]:
    """(size, signed, reg, off) from the _MEMX groups starting at group i."""
    name, r, sign, off = m.group(i, i + 1, i + 2, i + 3)
    return _SIZES[name], name.startswith("s"), int(r), _num(sign + off)


def _target(tok: str) -> tuple[int, str | None]:
    tok = tok.replace(" ", "")
    if tok.startswith("<"):
        return 0, tok[1:-1]
    if re.fullmatch(r"pc[+-]\d+", tok):
        return int(tok[2:]), None
    return 0, tok


def _regs(*pairs) -> str:
    """The common prefix ('r' or 'w') of register tokens; raises if mixed."""
    kinds = {k for k, _ in pairs}
    if len(kinds) != 1:
        raise AsmError("mixed r and w registers")
    return kinds.pop()


def _r(n: str) -> int:
    v = int(n)
    if not 0 <= v <= 10:
        raise AsmError(f"bad register r{v}")
    return v


def _parse_call(rest: str) -> Insn:
    call = Class.JMP | JumpOp.CALL
    m = re.fullmatch(r"(\S+?)#(-?\d+)(?:\s+off:(-?\d+))?", rest)
    if m:
        name, imm, off = m.group(1), int(m.group(2)), int(m.group(3) or 0)
        helper_name = Helper(imm).func_name if imm in Helper._value2member_map_ else None
        if name in ("unknown", helper_name) and not off:
            return Insn(call, 0, 0, 0, imm)
        return Insn(call, 0, PseudoSrc.KFUNC_CALL, off, imm)
    m = re.fullmatch(_TGT, rest)
    if m:
        tok = m.group(1)
        bare = tok.removeprefix("bpf_")
        if not tok.startswith(("pc", "<")) and bare in Helper.__members__:
            return Insn(call, 0, 0, 0, Helper[bare])
        imm, name = _target(tok)
        return Insn(call, 0, PseudoSrc.CALL, 0, imm, name)
    raise AsmError(f"bad call {rest!r}")


def _parse_imm64(dst: int, rhs: str) -> Insn | None:
    rhs = re.sub(r"\s+", "", rhs)
    m = re.fullmatch(r"map\[(fd|idx):(\d+)\](?:\[0\]\+(\d+))?", rhs)
    if m:
        kind, lo, hi = m.group(1), int(m.group(2)), m.group(3)
        if hi is None:
            src = PseudoSrc.MAP_FD if kind == "fd" else PseudoSrc.MAP_IDX
        else:
            src = PseudoSrc.MAP_VALUE if kind == "fd" else PseudoSrc.MAP_IDX_VALUE
        return Insn(LD_IMM64, dst, src, 0, lo | (int(hi or 0) << 32))
    m = re.fullmatch(r"btf_id\[(\d+)\](?:\[fd:(\d+)\])?", rhs)
    if m:
        return Insn(LD_IMM64, dst, PseudoSrc.BTF_ID, 0,
                    int(m.group(1)) | (int(m.group(2) or 0) << 32))
    m = re.fullmatch(r"subprog\[(.+)\]", rhs)
    if m:
        tok = m.group(1)
        imm, name = _target("pc" + tok if re.fullmatch(r"[+-]\d+", tok) else tok)
        return Insn(LD_IMM64, dst, PseudoSrc.FUNC, 0, imm & MASK32, name)
    m = re.fullmatch(r"(0x[0-9a-fA-F]+)(?:ll)?|([+-]?\d+)ll", rhs)
    if m:
        v = _num(m.group(1) or m.group(2))
        if not -(1 << 63) <= v <= MASK64:
            raise AsmError(f"ld_imm64 constant {v} outside 64 bits")
        return Insn(LD_IMM64, dst, 0, 0, v & MASK64)
    return None


def _parse_assign(dk: str, dst: int, rhs: str) -> Insn | None:
    """Forms "rD = ..." other than plain ALU."""
    if dk == "r":
        m = re.fullmatch(r"\*\s*" + _MEMX, rhs)
        if m:
            sz, signed, src, off = _memop(m, 1)
            if signed and sz == Size.DW:
                return None
            return Insn(Class.LDX | sz | (Mode.MEMSX if signed else Mode.MEM), dst, src, off)
        m = re.fullmatch(r"(le|be|bswap)(16|32|64)\s+r(\d+)", rhs)
        if m and int(m.group(3)) == dst:
            cls = Class.ALU64 if m.group(1) == "bswap" else Class.ALU
            order = Endian.BE if m.group(1) == "be" else Endian.LE
            return Insn(cls | ALUOp.END | order, dst, 0, 0, int(m.group(2)))
        m = re.fullmatch(r"\*\s*\(\s*(u8|u16|u32|u64)\s*\*\s*\)\s*skb\[\s*(?:r(\d+)\s*\+\s*)?(" + _NUM + r")\s*\]", rhs)
        if m and dst == 0:
            mode = Mode.IND if m.group(2) else Mode.ABS
            return Insn(Class.LD | _SIZES[m.group(1)] | mode, 0, int(m.group(2) or 0), 0,
                        _imm32(m.group(3)))
        m = re.fullmatch(r"atomic(64)?_(fetch_(add|and|or|xor)|xchg|cmpxchg)\(\s*" + _MEMX
                         + r"\s*,\s*(?:(r0)\s*,\s*)?r(\d+)\s*\)", rhs)
        if m:
            sz, signed, base, off = _memop(m, 4)
            src = _r(m.group(9))
            if signed or bool(m.group(1)) != (sz == Size.DW):
                return None
            kind = m.group(2)
            if (kind == "cmpxchg") != bool(m.group(8)):
                return None
            if kind == "cmpxchg":
                if dst != 0:
                    return None
                imm = AtomicOp.CMPXCHG
            else:
                if dst != src:
                    return None
                imm = AtomicOp.XCHG if kind == "xchg" else _FETCH[m.group(3)] | AtomicOp.FETCH
            return Insn(Class.STX | sz | Mode.ATOMIC, base, src, off, int(imm))
        m = re.fullmatch(r"load_acquire\(\s*" + _MEMX + r"\s*\)", rhs)
        if m:
            sz, signed, src, off = _memop(m, 1)
            if signed:
                return None
            return Insn(Class.STX | sz | Mode.ATOMIC, dst, src, off, AtomicOp.LOAD_ACQ)
        m = re.fullmatch(r"addr_space_cast\(\s*r(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)", rhs)
        if m:
            imm = ((int(m.group(2)) & 0xFFFF) << 16) | (int(m.group(3)) & 0xFFFF)
            return Insn(Class.ALU64 | ALUOp.MOV | Source.X, dst, _r(m.group(1)), 1, _s32(imm))
        return _parse_imm64(dst, rhs)
    return None


def _parse_insn(text: str) -> Insn:
    t = text.strip()
    if t == "exit":
        return Insn(Class.JMP | JumpOp.EXIT)
    m = re.fullmatch(r"(goto|gotol|may_goto)\s+" + _TGT, t)
    if m:
        rel, name = _target(m.group(2))
        if m.group(1) == "gotol":
            return Insn(Class.JMP32 | JumpOp.JA, 0, 0, 0, rel, name)
        op = JumpOp.JA if m.group(1) == "goto" else JumpOp.JCOND
        return Insn(Class.JMP | op, 0, 0, rel, 0, name)
    if t.startswith("call "):
        return _parse_call(t[5:].strip())
    m = re.fullmatch(r"if\s+" + _REG + r"\s*(" + _JMP_SYM_RE + r")\s*(?:" + _REG + r"|(" + _NUM
                     + r"))\s+goto\s+" + _TGT, t)
    if m:
        dk, d, sym, sk, s, imm, tgt = m.groups()
        rel, name = _target(tgt)
        cls = Class.JMP32 if dk == "w" else Class.JMP
        op = _JMP_BY_SYM[sym]
        if sk:
            _regs((dk, d), (sk, s))
            return Insn(cls | op | Source.X, _r(d), _r(s), rel, 0, name)
        return Insn(cls | op | Source.K, _r(d), 0, rel, _imm32(imm), name)
    m = re.fullmatch(r"lock\s+\*\s*" + _MEMX + r"\s*(\+=|&=|\|=|\^=)\s*r(\d+)", t)
    if m:
        sz, signed, base, off = _memop(m, 1)
        if not signed:
            imm = _ALU_BY_SYM[m.group(5)]
            return Insn(Class.STX | sz | Mode.ATOMIC, base, _r(m.group(6)), off, int(imm))
    m = re.fullmatch(r"store_release\(\s*" + _MEMX + r"\s*,\s*r(\d+)\s*\)", t)
    if m:
        sz, signed, base, off = _memop(m, 1)
        if not signed:
            return Insn(Class.STX | sz | Mode.ATOMIC, base, _r(m.group(5)), off,
                        AtomicOp.STORE_REL)
    m = re.fullmatch(r"\*\s*" + _MEMX + r"\s*=\s*(?:r(\d+)|(" + _NUM + r"))", t)
    if m:
        sz, signed, base, off = _memop(m, 1)
        if not signed:
            if m.group(5) is not None:
                return Insn(Class.STX | sz | Mode.MEM, base, _r(m.group(5)), off)
            return Insn(Class.ST | sz | Mode.MEM, base, 0, off, _imm32(m.group(6)))
    m = re.fullmatch(_REG + r"\s*=\s*-\s*" + _REG, t)
    if m and m.group(1) == m.group(3) and m.group(2) == m.group(4):
        cls = Class.ALU if m.group(1) == "w" else Class.ALU64
        return Insn(cls | ALUOp.NEG | Source.K, _r(m.group(2)))
    m = re.fullmatch(_REG + r"\s*=\s*(.+)", t)
    if m:
        got = _parse_assign(m.group(1), _r(m.group(2)), m.group(3).strip())
        if got is not None:
            return got
    m = re.fullmatch(_REG + r"\s*(" + _ALU_SYM_RE + r")\s*(?:(\(s(?:8|16|32)\))?\s*" + _REG
                     + r"|(" + _NUM + r"))", t)
    if m:
        dk, d, sym, sx, sk, s, imm = m.groups()
        cls = Class.ALU if dk == "w" else Class.ALU64
        op = _ALU_BY_SYM[sym]
        off = 1 if sym in ("s/=", "s%=") else 0
        if sx:
            if sym != "=":
                raise AsmError(f"sign extension only with '=': {t!r}")
            off = int(sx[2:-1])
        if sk:
            _regs((dk, d), (sk, s))
            return Insn(cls | op | Source.X, _r(d), _r(s), off, 0)
        if sx is None:
            return Insn(cls | op | Source.K, _r(d), 0, off, _imm32(imm))
    raise AsmError(f"cannot parse {t!r}")


_LABEL_RE = re.compile(r"([A-Za-z_.$][\w.$]*)\s*:")
_PREFIX_RE = re.compile(r"(?:\d+\s*:\s*)?(?:\(([0-9a-fA-F]{2})\)\s*)?(.*)")


def parse(text: str | list[str]) -> list[Insn]:
    """Instructions from disassembler or listing() text.

    Accepts "N: (xx) " prefixes (the opcode is checked), "; comment" tails,
    blank lines, "name:" label lines and jumps to <name> or name.
    """
    lines = text.splitlines() if isinstance(text, str) else list(text)
    items: list[Insn | Label] = []
    for n, raw in enumerate(lines, 1):
        body, _, comment = raw.partition(";")
        body = body.strip()
        if not body:
            continue
        m = _LABEL_RE.fullmatch(body)
        if m:
            items.append(Label(m.group(1)))
            continue
        m = _PREFIX_RE.fullmatch(body)
        want, body = m.group(1), m.group(2)
        try:
            insn = _parse_insn(body)
        except AsmError as e:
            raise AsmError(f"line {n}: {e}") from None
        if want is not None and int(want, 16) != insn.op:
            raise AsmError(f"line {n}: opcode ({want}) does not match {body!r} ({insn.op:02x})")
        if comment.strip():
            insn = Insn(insn.op, insn.dst, insn.src, insn.off, insn.imm, insn.target,
                        comment.strip())
        items.append(insn)
    return link(items)
