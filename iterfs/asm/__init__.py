"""eBPF instructions as values: builders, labels, assembler, disassembler, parser."""

from .build import (
    addr_space_cast, alu, atomic, call, call_kfunc, call_local, endian, exit_insn,
    gotol, ja, jmp, ld_abs, ld_btf_id, ld_func, ld_imm64, ld_ind, ld_map_fd,
    ld_map_idx, ld_map_idx_value, ld_map_value, ldx, ldxs, load_acquire, may_goto,
    mov, movsx, neg, st, store_release, stx,
)
from .helpers import Helper, helper
from .insn import Insn, Label, decode, label
from .link import assemble, flatten, link
from .opcodes import (
    FP, LD_IMM64, R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10, ALUOp, AsmError,
    AtomicOp, Class, Endian, JumpOp, Mode, PseudoSrc, Reg, Size, Source, alu_op,
    atomic_op, jump_op, reg, size,
)
from .text import disassemble, disassemble_insn, listing, parse

__all__ = [
    "ALUOp", "AsmError", "AtomicOp", "Class", "Endian", "FP", "Helper", "Insn",
    "JumpOp", "LD_IMM64", "Label", "Mode", "PseudoSrc", "R0", "R1", "R2", "R3", "R4",
    "R5", "R6", "R7", "R8", "R9", "R10", "Reg", "Size", "Source",
    "addr_space_cast", "alu", "alu_op", "assemble", "atomic", "atomic_op", "call",
    "call_kfunc", "call_local", "decode", "disassemble", "disassemble_insn", "endian",
    "exit_insn", "flatten", "gotol", "helper", "ja", "jmp", "jump_op", "label",
    "ld_abs", "ld_btf_id", "ld_func", "ld_imm64", "ld_ind", "ld_map_fd", "ld_map_idx",
    "ld_map_idx_value", "ld_map_value", "ldx", "ldxs", "link", "listing",
    "load_acquire", "may_goto", "mov", "movsx", "neg", "parse", "reg", "size", "st",
    "store_release", "stx",
]
