"""Opcode fields, registers and the coercers that turn names into them."""

from __future__ import annotations

from enum import IntEnum

# The opcode byte (include/uapi/linux/bpf_common.h, bpf.h):
#
#   ALU/JMP:        msb      lsb        LD/LDX/ST/STX:   msb      lsb
#                   +----+-+---+                         +---+--+---+
#                   | op |s|cls|                         |mde|sz|cls|
#                   +----+-+---+                         +---+--+---+
#                    7..4 3 2..0                          7..5 4..3 2..0
#
# s is the source (K: imm, X: src_reg); for BPF_END it picks the byte order.


class AsmError(ValueError):
    """Bad instruction, name or program; names the instruction when it can."""

    def __init__(self, msg: str, *, index: int | None = None, insn=None):
        super().__init__(msg)
        self.index = index
        self.insn = insn


class Class(IntEnum):
    LD = 0x00
    LDX = 0x01
    ST = 0x02
    STX = 0x03
    ALU = 0x04
    JMP = 0x05
    JMP32 = 0x06
    ALU64 = 0x07


class Size(IntEnum):
    W = 0x00
    H = 0x08
    B = 0x10
    DW = 0x18

    @property
    def nbytes(self) -> int:
        return {Size.W: 4, Size.H: 2, Size.B: 1, Size.DW: 8}[self]


class Mode(IntEnum):
    IMM = 0x00
    ABS = 0x20
    IND = 0x40
    MEM = 0x60
    MEMSX = 0x80
    ATOMIC = 0xC0


class Source(IntEnum):
    K = 0x00
    X = 0x08


class Endian(IntEnum):
    """The source bit of BPF_END in class ALU (BPF_TO_LE / BPF_TO_BE)."""

    LE = 0x00
    BE = 0x08


class ALUOp(IntEnum):
    ADD = 0x00
    SUB = 0x10
    MUL = 0x20
    DIV = 0x30
    OR = 0x40
    AND = 0x50
    LSH = 0x60
    RSH = 0x70
    NEG = 0x80
    MOD = 0x90
    XOR = 0xA0
    MOV = 0xB0
    ARSH = 0xC0
    END = 0xD0


class JumpOp(IntEnum):
    JA = 0x00
    JEQ = 0x10
    JGT = 0x20
    JGE = 0x30
    JSET = 0x40
    JNE = 0x50
    JSGT = 0x60
    JSGE = 0x70
    CALL = 0x80
    EXIT = 0x90
    JLT = 0xA0
    JLE = 0xB0
    JSLT = 0xC0
    JSLE = 0xD0
    JCOND = 0xE0  # may_goto (src_reg 0), 6.9


class AtomicOp(IntEnum):
    """imm of a BPF_STX|BPF_ATOMIC instruction."""

    ADD = 0x00
    OR = 0x40
    AND = 0x50
    XOR = 0xA0
    FETCH = 0x01  # flag, or'ed into the four above
    XCHG = 0xE0 | 0x01
    CMPXCHG = 0xF0 | 0x01
    LOAD_ACQ = 0x100
    STORE_REL = 0x110


class PseudoSrc(IntEnum):
    """src_reg of ld_imm64 (MAP_FD…MAP_IDX_VALUE) and of call (CALL, KFUNC_CALL).

    CALL and KFUNC_CALL are aliases of the values 1 and 2.
    """

    MAP_FD = 1
    MAP_VALUE = 2
    BTF_ID = 3
    FUNC = 4
    MAP_IDX = 5
    MAP_IDX_VALUE = 6
    CALL = 1
    KFUNC_CALL = 2


class Reg(IntEnum):
    R0 = 0
    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    R5 = 5
    R6 = 6
    R7 = 7
    R8 = 8
    R9 = 9
    R10 = 10

    def __str__(self) -> str:
        return f"r{self.value}"


R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = Reg
FP = R10

LD_IMM64 = Class.LD | Size.DW | Mode.IMM  # 0x18, two slots

# -- coercers ---------------------------------------------------------------


def reg(x) -> Reg:
    """Reg, int 0..10, or "r0".."r10" (also "fp")."""
    if isinstance(x, Reg):
        return x
    if isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= 10:
        return Reg(x)
    if isinstance(x, str):
        s = x.strip().lower()
        if s == "fp":
            return R10
        if s[:1] == "r" and s[1:].isdigit() and 0 <= int(s[1:]) <= 10:
            return Reg(int(s[1:]))
    raise AsmError(f"bad register {x!r} (want r0..r10)")


def is_reg(x) -> bool:
    """True for a register operand (Reg or a register name), False for an immediate."""
    return isinstance(x, (Reg, str))


_SIZE_NAMES = {
    "b": Size.B, "u8": Size.B, "h": Size.H, "u16": Size.H,
    "w": Size.W, "u32": Size.W, "dw": Size.DW, "u64": Size.DW,
}
_SIZE_BYTES = {1: Size.B, 2: Size.H, 4: Size.W, 8: Size.DW}


def size(x) -> Size:
    """Size, "b" "h" "w" "dw" / "u8".."u64", or a byte count 1, 2, 4, 8."""
    if isinstance(x, Size):
        return x
    if isinstance(x, str) and x.strip().lower() in _SIZE_NAMES:
        return _SIZE_NAMES[x.strip().lower()]
    if isinstance(x, int) and not isinstance(x, bool) and x in _SIZE_BYTES:
        return _SIZE_BYTES[x]
    raise AsmError(f"bad size {x!r} (want b, h, w, dw or u8..u64)")


# Kernel disasm.c operator strings double as names ("+=" for add).
ALU_SYMBOLS = {
    ALUOp.ADD: "+=", ALUOp.SUB: "-=", ALUOp.MUL: "*=", ALUOp.DIV: "/=",
    ALUOp.OR: "|=", ALUOp.AND: "&=", ALUOp.LSH: "<<=", ALUOp.RSH: ">>=",
    ALUOp.MOD: "%=", ALUOp.XOR: "^=", ALUOp.MOV: "=", ALUOp.ARSH: "s>>=",
}
JMP_SYMBOLS = {
    JumpOp.JEQ: "==", JumpOp.JGT: ">", JumpOp.JGE: ">=", JumpOp.JSET: "&",
    JumpOp.JNE: "!=", JumpOp.JSGT: "s>", JumpOp.JSGE: "s>=", JumpOp.JLT: "<",
    JumpOp.JLE: "<=", JumpOp.JSLT: "s<", JumpOp.JSLE: "s<=",
}
_ALU_BY_SYMBOL = {v: k for k, v in ALU_SYMBOLS.items()}
_JMP_BY_SYMBOL = {v: k for k, v in JMP_SYMBOLS.items()}


def _enum_by_name(enum, x, what, extra=None):
    if isinstance(x, enum):
        return x
    if isinstance(x, str):
        s = x.strip()
        if extra and s in extra:
            return extra[s]
        if s.upper() in enum.__members__:
            return enum[s.upper()]
    elif isinstance(x, int) and not isinstance(x, bool):
        try:
            return enum(x)
        except ValueError:
            pass
    raise AsmError(f"bad {what} {x!r}")


def alu_op(x) -> ALUOp:
    """ALUOp, a name ("add", "mov", "arsh") or a disasm.c symbol ("+=")."""
    return _enum_by_name(ALUOp, x, "ALU op", _ALU_BY_SYMBOL)


def jump_op(x) -> JumpOp:
    """JumpOp, a name ("jne", also "ne") or a disasm.c symbol ("!=", "s>")."""
    if isinstance(x, str) and x.strip().upper() in ("EQ", "GT", "GE", "SET", "NE",
                                                      "SGT", "SGE", "LT", "LE", "SLT", "SLE"):
        x = "j" + x.strip()
    return _enum_by_name(JumpOp, x, "jump op", _JMP_BY_SYMBOL)


_ATOMIC_NAMES = {
    "load_acquire": AtomicOp.LOAD_ACQ, "store_release": AtomicOp.STORE_REL,
    "fetch_add": AtomicOp.ADD | AtomicOp.FETCH, "fetch_or": AtomicOp.OR | AtomicOp.FETCH,
    "fetch_and": AtomicOp.AND | AtomicOp.FETCH, "fetch_xor": AtomicOp.XOR | AtomicOp.FETCH,
}


def atomic_op(x) -> int:
    """AtomicOp, a name ("add", "xchg", "fetch_add", "load_acq"), or an imm value."""
    if isinstance(x, str) and x.strip().lower() in _ATOMIC_NAMES:
        return _ATOMIC_NAMES[x.strip().lower()]
    if isinstance(x, int) and not isinstance(x, (bool, AtomicOp)) and x in _VALID_ATOMIC:
        return x
    return _enum_by_name(AtomicOp, x, "atomic op")


_VALID_ATOMIC = {0x00, 0x40, 0x50, 0xA0, 0x01, 0x41, 0x51, 0xA1, 0xE1, 0xF1, 0x100, 0x110}
