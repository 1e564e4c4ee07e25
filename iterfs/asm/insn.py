"""The instruction value, labels, and the struct bpf_insn encoding."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .opcodes import LD_IMM64, AsmError, Class, JumpOp

# struct bpf_insn, little-endian (include/uapi/linux/bpf.h):
#
#   byte   0        1              2..3        4..7
#        +------+---------+-----------------+--------+
#        | code | src|dst |   off (s16)     | imm    |
#        +------+---------+-----------------+--------+
#                 7..4 3..0                   (s32)
#
# ld_imm64 takes two slots; the second has code = regs = off = 0 and carries
# the upper 32 bits of the constant in its imm:
#
#   | 0x18 | src|dst | 0 | imm[31:0] |  | 0 | 0 | 0 | imm[63:32] |

_SLOT = struct.Struct("<BBhI")
INT16 = (-(1 << 15), (1 << 15) - 1)
INT32 = (-(1 << 31), (1 << 31) - 1)
MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class Label:
    """A jump target marker in an instruction list; occupies no slot."""

    name: str


def label(name: str) -> Label:
    if not isinstance(name, str) or not name:
        raise AsmError(f"bad label name {name!r}")
    return Label(name)


@dataclass(frozen=True)
class Insn:
    """One eBPF instruction. For ld_imm64, imm is the whole 64-bit constant.

    target names a label that link() turns into off (jumps) or imm (gotol,
    call_local, ld_imm64 of a subprog); comment is not part of equality.
    """

    op: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    target: str | None = None
    comment: str | None = field(default=None, compare=False)

    def __post_init__(self):
        for name in ("op", "dst", "src", "off", "imm"):  # enums → plain ints
            v = getattr(self, name)
            if type(v) is not int:
                if isinstance(v, bool) or not isinstance(v, int):
                    raise AsmError(f"Insn.{name} must be an int, not {v!r}")
                object.__setattr__(self, name, int(v))

    @property
    def cls(self) -> Class:
        return Class(self.op & 0x07)

    @property
    def is_ld_imm64(self) -> bool:
        return self.op == LD_IMM64

    @property
    def slots(self) -> int:
        return 2 if self.op == LD_IMM64 else 1

    @property
    def is_jump(self) -> bool:
        """Conditional or unconditional jump (not call, not exit)."""
        if self.cls not in (Class.JMP, Class.JMP32):
            return False
        return (self.op & 0xF0) not in (JumpOp.CALL, JumpOp.EXIT)

    @property
    def is_call(self) -> bool:
        return self.cls == Class.JMP and (self.op & 0xF0) == JumpOp.CALL

    def check(self) -> None:
        """Raise AsmError if a field does not fit struct bpf_insn."""
        if self.target is not None:
            raise AsmError(f"unresolved label {self.target!r} (use assemble or link)")
        if not 0 <= self.op <= 0xFF:
            raise AsmError(f"opcode {self.op:#x} outside a byte")
        for name in ("dst", "src"):
            if not 0 <= getattr(self, name) <= 15:
                raise AsmError(f"{name} register {getattr(self, name)} outside 0..15")
        if not INT16[0] <= self.off <= INT16[1]:
            raise AsmError(f"offset {self.off} outside int16")
        if self.op == LD_IMM64:
            if not -(1 << 63) <= self.imm <= MASK64:
                raise AsmError(f"imm {self.imm} outside 64 bits")
        elif not INT32[0] <= self.imm <= INT32[1]:
            raise AsmError(f"imm {self.imm} outside int32")

    def encode(self) -> bytes:
        self.check()
        regs = (self.src << 4) | self.dst
        first = _SLOT.pack(self.op, regs, self.off, self.imm & MASK32)
        if self.op != LD_IMM64:
            return first
        return first + _SLOT.pack(0, 0, 0, (self.imm >> 32) & MASK32)

    def __repr__(self) -> str:
        imm = f"{self.imm:#x}" if self.op == LD_IMM64 else str(self.imm)
        extra = "".join(f", {k}={getattr(self, k)!r}" for k in ("target", "comment")
                        if getattr(self, k) is not None)
        return (f"Insn(op={self.op:#04x}, dst={self.dst}, src={self.src},"
                f" off={self.off}, imm={imm}{extra})")

    def __str__(self) -> str:
        from .text import disassemble_insn

        return disassemble_insn(self)


def _s32(u: int) -> int:
    return u - (1 << 32) if u & (1 << 31) else u


def decode(data: bytes) -> list[Insn]:
    """Instructions of a program; ld_imm64 comes back as one Insn (imm unsigned)."""
    data = bytes(data)
    if len(data) % 8:
        raise AsmError(f"program length {len(data)} is not a multiple of 8")
    out: list[Insn] = []
    i, n = 0, len(data) // 8
    while i < n:
        op, regs, off, imm = _SLOT.unpack_from(data, i * 8)
        dst, src = regs & 0x0F, regs >> 4
        if op != LD_IMM64:
            out.append(Insn(op, dst, src, off, _s32(imm)))
            i += 1
            continue
        if i + 1 >= n:
            raise AsmError(f"truncated ld_imm64 at slot {i}", index=len(out))
        op2, regs2, off2, hi = _SLOT.unpack_from(data, (i + 1) * 8)
        if op2 or regs2 or off2:
            raise AsmError(f"bad second slot of ld_imm64 at slot {i}", index=len(out))
        out.append(Insn(op, dst, src, off, imm | (hi << 32)))
        i += 2
    return out
