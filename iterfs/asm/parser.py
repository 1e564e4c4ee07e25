"""Parser for the disassembler's text (kernel/bpf/disasm.c notation) and listings."""

from __future__ import annotations

import re

from .helpers import Helper
from .insn import MASK32, MASK64, Insn, Label
from .link import link
from .opcodes import (
    ALU_SYMBOLS, JMP_SYMBOLS, LD_IMM64, ALUOp, AsmError, AtomicOp, Class, Endian,
    JumpOp, Mode, PseudoSrc, Size, Source,
)

# Reads what text.py prints, with or without "N: (xx) " prefixes, and a little
# more for hand-written programs: labels ("name:" lines, jumps to name or <name>),
# "; comments", llvm's "r1 = 42 ll", "call seq_printf", spaces around operators.


def _s32(v: int) -> int:
    v &= MASK32
    return v - (1 << 32) if v & (1 << 31) else v


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
    if "x" in s.lower() and (1 << 31) <= v <= MASK32:
        v -= 1 << 32
    return v


def _memop(m, i: int) -> tuple[Size, bool, int, int]:
    """(size, signed, reg, off) from the _MEMX groups starting at group i."""
    name, r, sign, off = m.group(i, i + 1, i + 2, i + 3)
    return _SIZES[name], name.startswith("s"), _r(r), _num(sign + off)


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
            return Insn(Class.LD | _SIZES[m.group(1)] | mode, 0, _r(m.group(2) or "0"), 0,
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
