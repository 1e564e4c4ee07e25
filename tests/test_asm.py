"""Pure tier: encodings, kernel disassembler text, labels, round trips of iterfs.asm."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iterfs.asm import (
    R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10, ALUOp, AsmError, AtomicOp, Class,
    Helper, Insn, JumpOp, Label, Mode, PseudoSrc, Reg, Size, Source, addr_space_cast,
    alu, alu_op, assemble, atomic, call, call_kfunc, call_local, decode, disassemble,
    endian, exit_insn, gotol, helper, ja, jmp, jump_op, label, ld_abs, ld_btf_id,
    ld_func, ld_imm64, ld_ind, ld_map_fd, ld_map_idx, ld_map_idx_value, ld_map_value,
    ldx, ldxs, link, listing, load_acquire, may_goto, mov, movsx, neg, parse, reg,
    size, st as st_imm, store_release, stx,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# -- (1)+(2) golden encodings and kernel text -----------------------------------
#
# Each row: (instruction, bytes, text). The bytes come from independent sources:
#   [llvm]   llvm-project llvm/test/MC/BPF/insn-unit.s (llvm-mc + llvm-objdump CHECK lines)
#   [llvm32] llvm-project llvm/test/MC/BPF/insn-unit-32.s
#   [gas]    binutils-gdb gas/testsuite/gas/bpf/{alu,alu32,mem,atomic-v3,jump}-pseudoc.d,
#            atomic-v3.d (GNU as + objdump)
#   [uapi]   hand-encoded from include/uapi/linux/bpf.h: byte 0 = code, byte 1 =
#            src << 4 | dst, bytes 2..3 = off (le16), bytes 4..7 = imm (le32);
#            ld_imm64 adds a slot 00 00 00 00 <imm[63:32]>. Codes: ALU64 0x07, ALU 0x04,
#            JMP 0x05, JMP32 0x06, STX 0x03, LDX 0x01, LD 0x00, X 0x08, DIV 0x30, MOD 0x90,
#            JA 0x00, CALL 0x80, JCOND 0xe0, MOV 0xb0, ATOMIC 0xc0, W 0x00, H 0x08,
#            B 0x10, DW 0x18; sdiv/smod: off = 1 (Documentation/bpf/standardization/
#            instruction-set.rst); BPF_LOAD_ACQ 0x100, BPF_STORE_REL 0x110;
#            BPF_PSEUDO_CALL 1, BPF_PSEUDO_KFUNC_CALL 2, BPF_PSEUDO_MAP_FD 1 … MAP_IDX_VALUE 6.
# The text is what print_bpf_insn() in Linux 6.18 kernel/bpf/disasm.c prints after
# "(%02x) " (see the format-string test below); rows marked [iterfs] use the
# documented choice for ld_imm64 pseudo sources and kfunc off.

GOLDEN = [
    # ALU64, BPF_K  [llvm]
    (alu("add", R0, 1), "0700000001000000", "r0 += 1"),
    (alu("sub", R1, 1), "1701000001000000", "r1 -= 1"),
    (alu("mul", R2, -4), "27020000fcffffff", "r2 *= -4"),
    (alu("div", R3, 5), "3703000005000000", "r3 /= 5"),
    (alu("mod", R4, 5), "9704000005000000", "r4 %= 5"),
    (alu("or", R4, 0xFF), "47040000ff000000", "r4 |= 255"),
    (alu("and", R5, 0xFF), "57050000ff000000", "r5 &= 255"),
    (alu("lsh", R6, 63), "670600003f000000", "r6 <<= 63"),
    (alu("rsh", R7, 32), "7707000020000000", "r7 >>= 32"),
    (alu("xor", R8, 0), "a708000000000000", "r8 ^= 0"),
    (mov(R9, 1), "b709000001000000", "r9 = 1"),
    (mov(R9, -1), "b7090000ffffffff", "r9 = -1"),
    (alu("arsh", R10, 64), "c70a000040000000", "r10 s>>= 64"),
    # ALU64, BPF_X  [llvm]
    (alu("add", R0, R1), "0f10000000000000", "r0 += r1"),
    (alu("sub", R1, R2), "1f21000000000000", "r1 -= r2"),
    (alu("mul", R2, R3), "2f32000000000000", "r2 *= r3"),
    (alu("div", R3, R4), "3f43000000000000", "r3 /= r4"),
    (alu("mod", R4, R5), "9f54000000000000", "r4 %= r5"),
    (alu("or", R4, R5), "4f54000000000000", "r4 |= r5"),
    (alu("and", R5, R6), "5f65000000000000", "r5 &= r6"),
    (alu("lsh", R6, R7), "6f76000000000000", "r6 <<= r7"),
    (alu("rsh", R7, R8), "7f87000000000000", "r7 >>= r8"),
    (alu("xor", R8, R9), "af98000000000000", "r8 ^= r9"),
    (mov(R9, R10), "bfa9000000000000", "r9 = r10"),
    (alu("arsh", R10, R0), "cf0a000000000000", "r10 s>>= r0"),
    (neg(R2), "8702000000000000", "r2 = -r2"),
    # ALU32, BPF_X and BPF_K  [llvm32], mod [gas]
    (neg(R1, alu32=True), "8401000000000000", "w1 = -w1"),
    (alu("add", R0, R1, alu32=True), "0c10000000000000", "w0 += w1"),
    (alu("sub", R1, R2, alu32=True), "1c21000000000000", "w1 -= w2"),
    (alu("mul", R2, R3, alu32=True), "2c32000000000000", "w2 *= w3"),
    (alu("div", R3, R4, alu32=True), "3c43000000000000", "w3 /= w4"),
    (alu("or", R4, R5, alu32=True), "4c54000000000000", "w4 |= w5"),
    (alu("and", R5, R6, alu32=True), "5c65000000000000", "w5 &= w6"),
    (alu("lsh", R6, R7, alu32=True), "6c76000000000000", "w6 <<= w7"),
    (alu("rsh", R7, R8, alu32=True), "7c87000000000000", "w7 >>= w8"),
    (alu("xor", R8, R9, alu32=True), "ac98000000000000", "w8 ^= w9"),
    (mov(R9, R10, alu32=True), "bca9000000000000", "w9 = w10"),
    (alu("arsh", R10, R0, alu32=True), "cc0a000000000000", "w10 s>>= w0"),
    (alu("mod", R5, R6, alu32=True), "9c65000000000000", "w5 %= w6"),
    (alu("add", R0, 1, alu32=True), "0400000001000000", "w0 += 1"),
    (alu("sub", R1, 1, alu32=True), "1401000001000000", "w1 -= 1"),
    (alu("mul", R2, -4, alu32=True), "24020000fcffffff", "w2 *= -4"),
    (alu("div", R3, 5, alu32=True), "3403000005000000", "w3 /= 5"),
    (alu("or", R4, 0xFF, alu32=True), "44040000ff000000", "w4 |= 255"),
    (alu("and", R5, 0xFF, alu32=True), "54050000ff000000", "w5 &= 255"),
    (alu("lsh", R6, 63, alu32=True), "640600003f000000", "w6 <<= 63"),
    (alu("rsh", R7, 32, alu32=True), "7407000020000000", "w7 >>= 32"),
    (alu("xor", R8, 0, alu32=True), "a408000000000000", "w8 ^= 0"),
    (mov(R9, 1, alu32=True), "b409000001000000", "w9 = 1"),
    (mov(R9, -1, alu32=True), "b4090000ffffffff", "w9 = -1"),
    (alu("arsh", R10, 64, alu32=True), "c40a000040000000", "w10 s>>= 64"),
    (alu("mod", R2, 0x29A, alu32=True), "940200009a020000", "w2 %= 666"),
    # BPF_END (class ALU) [llvm] be, [gas] le; bswap (class ALU64) [gas]
    (endian(R1, 16, "be"), "dc01000010000000", "r1 = be16 r1"),
    (endian(R2, 32, "be"), "dc02000020000000", "r2 = be32 r2"),
    (endian(R3, 64, "be"), "dc03000040000000", "r3 = be64 r3"),
    (endian(R9, 16, "le"), "d409000010000000", "r9 = le16 r9"),
    (endian(R8, 32, "le"), "d408000020000000", "r8 = le32 r8"),
    (endian(R7, 64, "le"), "d407000040000000", "r7 = le64 r7"),
    (endian(R1, 16, "bswap"), "d701000010000000", "r1 = bswap16 r1"),
    (endian(R2, 32, "bswap"), "d702000020000000", "r2 = bswap32 r2"),
    (endian(R3, 64, "bswap"), "d703000040000000", "r3 = bswap64 r3"),
    # movsx [gas]
    (movsx(R1, R2, 8), "bf21080000000000", "r1 = (s8)r2"),
    (movsx(R1, R2, 16), "bf21100000000000", "r1 = (s16)r2"),
    (movsx(R1, R2, 32), "bf21200000000000", "r1 = (s32)r2"),
    (movsx(R1, R2, 8, alu32=True), "bc21080000000000", "w1 = (s8)w2"),
    (movsx(R1, R2, 16, alu32=True), "bc21100000000000", "w1 = (s16)w2"),
    # sdiv / smod  [uapi]: code as for div/mod, off = 1
    (alu("div", R1, R2, off=1), "3f21010000000000", "r1 s/= r2"),
    (alu("mod", R1, 3, off=1), "9701010003000000", "r1 s%= 3"),
    (alu("div", R1, R2, alu32=True, off=1), "3c21010000000000", "w1 s/= w2"),
    (alu("mod", R1, -3, alu32=True, off=1), "94010100fdffffff", "w1 s%= -3"),
    (alu("div", R4, 7, alu32=True, off=1), "3404010007000000", "w4 s/= 7"),
    (alu("mod", R4, R5, off=1), "9f54010000000000", "r4 s%= r5"),
    # addr_space_cast [uapi]: ALU64|MOV|X, off = 1, imm = dst_as << 16 | src_as
    (addr_space_cast(R1, R2, 0, 1), "bf21010001000000", "r1 = addr_space_cast(r2, 0, 1)"),
    # JMP  [llvm]; jset [gas]
    (ja(27), "05001b0000000000", "goto pc+27"),
    (call(1), "8500000001000000", "call bpf_map_lookup_elem#1"),
    (exit_insn(), "9500000000000000", "exit"),
    (jmp("jeq", R0, R1, 24), "1d10180000000000", "if r0 == r1 goto pc+24"),
    (jmp("jne", R3, R4, 23), "5d43170000000000", "if r3 != r4 goto pc+23"),
    (jmp("jgt", R1, R2, 22), "2d21160000000000", "if r1 > r2 goto pc+22"),
    (jmp("jge", R2, R3, 21), "3d32150000000000", "if r2 >= r3 goto pc+21"),
    (jmp("jsgt", R4, R5, 20), "6d54140000000000", "if r4 s> r5 goto pc+20"),
    (jmp("jsge", R5, R6, 19), "7d65130000000000", "if r5 s>= r6 goto pc+19"),
    (jmp("jlt", R6, R7, 18), "ad76120000000000", "if r6 < r7 goto pc+18"),
    (jmp("jle", R7, R8, 17), "bd87110000000000", "if r7 <= r8 goto pc+17"),
    (jmp("jslt", R8, R9, 16), "cd98100000000000", "if r8 s< r9 goto pc+16"),
    (jmp("jsle", R9, R10, 15), "dda90f0000000000", "if r9 s<= r10 goto pc+15"),
    (jmp("jset", R3, R4, 0), "4d43000000000000", "if r3 & r4 goto pc+0"),
    (jmp("jeq", R0, 0, 14), "15000e0000000000", "if r0 == 0x0 goto pc+14"),
    (jmp("jne", R3, -1, 13), "55030d00ffffffff", "if r3 != 0xffffffff goto pc+13"),
    (jmp("jgt", R1, 64, 12), "25010c0040000000", "if r1 > 0x40 goto pc+12"),
    (jmp("jge", R2, -1, 11), "35020b00ffffffff", "if r2 >= 0xffffffff goto pc+11"),
    (jmp("jsgt", R4, -1, 10), "65040a00ffffffff", "if r4 s> 0xffffffff goto pc+10"),
    (jmp("jsge", R5, 0x7FFFFFFF, 9), "75050900ffffff7f", "if r5 s>= 0x7fffffff goto pc+9"),
    (jmp("jlt", R6, 0xFF, 8), "a5060800ff000000", "if r6 < 0xff goto pc+8"),
    (jmp("jle", R7, 0xFFFF, 7), "b5070700ffff0000", "if r7 <= 0xffff goto pc+7"),
    (jmp("jslt", R8, 0, 6), "c508060000000000", "if r8 s< 0x0 goto pc+6"),
    (jmp("jsle", R9, -1, 5), "d5090500ffffffff", "if r9 s<= 0xffffffff goto pc+5"),
    (jmp("jset", R3, 3, 1), "4503010003000000", "if r3 & 0x3 goto pc+1"),
    # JMP32  [llvm32]
    (jmp("jset", R1, R2, 13, jmp32=True), "4e210d0000000000", "if w1 & w2 goto pc+13"),
    (jmp("jset", R1, 0xFF, 12, jmp32=True), "46010c00ff000000", "if w1 & 0xff goto pc+12"),
    (jmp("jeq", R0, R1, 11, jmp32=True), "1e100b0000000000", "if w0 == w1 goto pc+11"),
    (jmp("jne", R3, R4, 10, jmp32=True), "5e430a0000000000", "if w3 != w4 goto pc+10"),
    (jmp("jgt", R1, R2, 9, jmp32=True), "2e21090000000000", "if w1 > w2 goto pc+9"),
    (jmp("jge", R2, R3, 8, jmp32=True), "3e32080000000000", "if w2 >= w3 goto pc+8"),
    (jmp("jsgt", R4, R5, 7, jmp32=True), "6e54070000000000", "if w4 s> w5 goto pc+7"),
    (jmp("jsge", R5, R6, 6, jmp32=True), "7e65060000000000", "if w5 s>= w6 goto pc+6"),
    (jmp("jlt", R6, R7, 5, jmp32=True), "ae76050000000000", "if w6 < w7 goto pc+5"),
    (jmp("jle", R7, R8, 4, jmp32=True), "be87040000000000", "if w7 <= w8 goto pc+4"),
    (jmp("jslt", R8, R9, 3, jmp32=True), "ce98030000000000", "if w8 s< w9 goto pc+3"),
    (jmp("jsle", R9, R10, 2, jmp32=True), "dea9020000000000", "if w9 s<= w10 goto pc+2"),
    (jmp("jeq", R0, 0, 1, jmp32=True), "1600010000000000", "if w0 == 0x0 goto pc+1"),
    (jmp("jne", R3, -1, 0, jmp32=True), "56030000ffffffff", "if w3 != 0xffffffff goto pc+0"),
    (jmp("jgt", R1, 64, -1, jmp32=True), "2601ffff40000000", "if w1 > 0x40 goto pc-1"),
    (jmp("jge", R2, -1, -2, jmp32=True), "3602feffffffffff", "if w2 >= 0xffffffff goto pc-2"),
    (jmp("jsgt", R4, -1, -3, jmp32=True), "6604fdffffffffff", "if w4 s> 0xffffffff goto pc-3"),
    (jmp("jsge", R5, 0x7FFFFFFF, -4, jmp32=True), "7605fcffffffff7f",
     "if w5 s>= 0x7fffffff goto pc-4"),
    (jmp("jlt", R6, 0xFF, -5, jmp32=True), "a606fbffff000000", "if w6 < 0xff goto pc-5"),
    (jmp("jle", R7, 0xFFFF, -6, jmp32=True), "b607faffffff0000", "if w7 <= 0xffff goto pc-6"),
    (jmp("jslt", R8, 0, -7, jmp32=True), "c608f9ff00000000", "if w8 s< 0x0 goto pc-7"),
    (jmp("jsle", R9, -1, -8, jmp32=True), "d609f8ffffffffff", "if w9 s<= 0xffffffff goto pc-8"),
    # gotol, may_goto, calls  [uapi]
    (gotol(70000), "0600000070110100", "gotol pc+70000"),
    (gotol(-1), "06000000ffffffff", "gotol pc-1"),
    (may_goto(2), "e500020000000000", "may_goto pc+2"),
    (call("seq_printf"), "850000007e000000", "call bpf_seq_printf#126"),
    (call(Helper.probe_read_kernel_str), "8500000073000000",
     "call bpf_probe_read_kernel_str#115"),
    (call(300), "850000002c010000", "call unknown#300"),
    (call_local(3), "8510000003000000", "call pc+3"),
    (call_local(-5), "85100000fbffffff", "call pc-5"),
    (call_kfunc(1234), "85200000d2040000", "call kernel-function#1234"),
    (call_kfunc(1234, off=2), "85200200d2040000", "call kernel-function#1234 off:2"),  # [iterfs]
    # LDX / STX  [llvm]
    (ldx("b", R5, R0, 0), "7105000000000000", "r5 = *(u8 *)(r0 +0)"),
    (ldx("h", R6, R1, 8), "6916080000000000", "r6 = *(u16 *)(r1 +8)"),
    (ldx("w", R7, R2, 16), "6127100000000000", "r7 = *(u32 *)(r2 +16)"),
    (ldx("dw", R8, R3, -30), "7938e2ff00000000", "r8 = *(u64 *)(r3 -30)"),
    (stx("b", R0, R7, 0), "7370000000000000", "*(u8 *)(r0 +0) = r7"),
    (stx("h", R1, R8, 8), "6b81080000000000", "*(u16 *)(r1 +8) = r8"),
    (stx("w", R2, R9, 16), "6392100000000000", "*(u32 *)(r2 +16) = r9"),
    (stx("dw", R3, R10, -30), "7ba3e2ff00000000", "*(u64 *)(r3 -30) = r10"),
    # ST, MEMSX  [gas mem-pseudoc.d]
    (st_imm("b", R1, 0x7EEF, 0x11223344), "7201ef7e44332211", "*(u8 *)(r1 +32495) = 287454020"),
    (st_imm("h", R1, 0x7EEF, 0x11223344), "6a01ef7e44332211", "*(u16 *)(r1 +32495) = 287454020"),
    (st_imm("w", R1, 0x7EEF, 0x11223344), "6201ef7e44332211", "*(u32 *)(r1 +32495) = 287454020"),
    (st_imm("dw", R1, -2, 0x11223344), "7a01feff44332211", "*(u64 *)(r1 -2) = 287454020"),
    (st_imm("b", R10, -1, 0), "720affff00000000", "*(u8 *)(r10 -1) = 0"),
    (ldxs("w", R2, R1, 0x7EEF), "8112ef7e00000000", "r2 = *(s32 *)(r1 +32495)"),
    (ldxs("h", R2, R1, 0x7EEF), "8912ef7e00000000", "r2 = *(s16 *)(r1 +32495)"),
    (ldxs("b", R2, R1, 0x7EEF), "9112ef7e00000000", "r2 = *(s8 *)(r1 +32495)"),
    # atomics  [gas atomic-v3.d]: dst r1, src r2, off 0x1eef
    (atomic("dw", "add", R1, R2, 0x1EEF), "db21ef1e00000000", "lock *(u64 *)(r1 +7919) += r2"),
    (atomic("w", "add", R1, R2, 0x1EEF), "c321ef1e00000000", "lock *(u32 *)(r1 +7919) += r2"),
    (atomic("dw", "or", R1, R2, 0x1EEF), "db21ef1e40000000", "lock *(u64 *)(r1 +7919) |= r2"),
    (atomic("w", "or", R1, R2, 0x1EEF), "c321ef1e40000000", "lock *(u32 *)(r1 +7919) |= r2"),
    (atomic("dw", "and", R1, R2, 0x1EEF), "db21ef1e50000000", "lock *(u64 *)(r1 +7919) &= r2"),
    (atomic("w", "and", R1, R2, 0x1EEF), "c321ef1e50000000", "lock *(u32 *)(r1 +7919) &= r2"),
    (atomic("dw", "xor", R1, R2, 0x1EEF), "db21ef1ea0000000", "lock *(u64 *)(r1 +7919) ^= r2"),
    (atomic("w", "xor", R1, R2, 0x1EEF), "c321ef1ea0000000", "lock *(u32 *)(r1 +7919) ^= r2"),
    (atomic("dw", "add", R1, R2, 0x1EEF, fetch=True), "db21ef1e01000000",
     "r2 = atomic64_fetch_add((u64 *)(r1 +7919), r2)"),
    (atomic("w", "add", R1, R2, 0x1EEF, fetch=True), "c321ef1e01000000",
     "r2 = atomic_fetch_add((u32 *)(r1 +7919), r2)"),
    (atomic("dw", "or", R1, R2, 0x1EEF, fetch=True), "db21ef1e41000000",
     "r2 = atomic64_fetch_or((u64 *)(r1 +7919), r2)"),
    (atomic("w", "or", R1, R2, 0x1EEF, fetch=True), "c321ef1e41000000",
     "r2 = atomic_fetch_or((u32 *)(r1 +7919), r2)"),
    (atomic("dw", "and", R1, R2, 0x1EEF, fetch=True), "db21ef1e51000000",
     "r2 = atomic64_fetch_and((u64 *)(r1 +7919), r2)"),
    (atomic("w", "and", R1, R2, 0x1EEF, fetch=True), "c321ef1e51000000",
     "r2 = atomic_fetch_and((u32 *)(r1 +7919), r2)"),
    (atomic("dw", "xor", R1, R2, 0x1EEF, fetch=True), "db21ef1ea1000000",
     "r2 = atomic64_fetch_xor((u64 *)(r1 +7919), r2)"),
    (atomic("w", "xor", R1, R2, 0x1EEF, fetch=True), "c321ef1ea1000000",
     "r2 = atomic_fetch_xor((u32 *)(r1 +7919), r2)"),
    (atomic("dw", "xchg", R1, R2, 0x1EEF), "db21ef1ee1000000",
     "r2 = atomic64_xchg((u64 *)(r1 +7919), r2)"),
    (atomic("w", "xchg", R1, R2, 0x1EEF), "c321ef1ee1000000",
     "r2 = atomic_xchg((u32 *)(r1 +7919), r2)"),
    (atomic("dw", "cmpxchg", R1, R2, 0x1EEF), "db21ef1ef1000000",
     "r0 = atomic64_cmpxchg((u64 *)(r1 +7919), r0, r2)"),
    (atomic("w", "cmpxchg", R1, R2, 0x1EEF), "c321ef1ef1000000",
     "r0 = atomic_cmpxchg((u32 *)(r1 +7919), r0, r2)"),
    # load-acquire / store-release  [uapi]; the u32 one also appears as raw bytes
    # (.byte 0xc3, 0x10; .short 0x7fff; .long 0x100) in the Rust atomic-maybe-uninit tests.
    (load_acquire("w", R0, R1, 0x7FFF), "c310ff7f00010000", "r0 = load_acquire((u32 *)(r1 +32767))"),
    (load_acquire("b", R0, R1, 0), "d310000000010000", "r0 = load_acquire((u8 *)(r1 +0))"),
    (load_acquire("h", R3, R4, 2), "cb43020000010000", "r3 = load_acquire((u16 *)(r4 +2))"),
    (load_acquire("dw", R1, R10, -8), "dba1f8ff00010000", "r1 = load_acquire((u64 *)(r10 -8))"),
    (store_release("dw", R1, R2, -8), "db21f8ff10010000", "store_release((u64 *)(r1 -8), r2)"),
    (store_release("b", R10, R3, -1), "d33affff10010000", "store_release((u8 *)(r10 -1), r3)"),
    (store_release("w", R2, R3, 4), "c332040010010000", "store_release((u32 *)(r2 +4), r3)"),
    (store_release("h", R1, R2, 0), "cb21000010010000", "store_release((u16 *)(r1 +0), r2)"),
    # LD ABS / IND  [llvm]
    (ld_abs("b", 0), "3000000000000000", "r0 = *(u8 *)skb[0]"),
    (ld_abs("h", 2), "2800000002000000", "r0 = *(u16 *)skb[2]"),
    (ld_abs("w", 4), "2000000004000000", "r0 = *(u32 *)skb[4]"),
    (ld_ind("b", R0, 0), "5000000000000000", "r0 = *(u8 *)skb[r0 + 0]"),
    (ld_ind("h", R1, 0), "4810000000000000", "r0 = *(u16 *)skb[r1 + 0]"),
    (ld_ind("w", R2, 0), "4020000000000000", "r0 = *(u32 *)skb[r2 + 0]"),
    # ld_imm64  [llvm] plain; [uapi] pseudo sources, text [iterfs]
    (ld_imm64(R9, 0xFFFFFFFF), "18090000ffffffff0000000000000000", "r9 = 0xffffffff"),
    (ld_imm64(R9, 0x1FFFFFFFF), "18090000ffffffff0000000001000000", "r9 = 0x1ffffffff"),
    (ld_imm64(R0, 0x1234), "1800000034120000" "0000000000000000", "r0 = 0x1234"),
    (ld_imm64(R1, -1), "18010000ffffffff00000000ffffffff", "r1 = 0xffffffffffffffff"),
    (ld_map_fd(R1, 5), "1811000005000000" "0000000000000000", "r1 = map[fd:5]"),
    (ld_map_value(R1, 5, 8), "1821000005000000" "0000000008000000", "r1 = map[fd:5][0]+8"),
    (ld_btf_id(R1, 1234), "18310000d2040000" "0000000000000000", "r1 = btf_id[1234]"),
    (ld_btf_id(R1, 1234, btf_fd=7), "18310000d2040000" "0000000007000000",
     "r1 = btf_id[1234][fd:7]"),
    (ld_func(R2, 3), "1842000003000000" "0000000000000000", "r2 = subprog[+3]"),
    (ld_map_idx(R1, 2), "1851000002000000" "0000000000000000", "r1 = map[idx:2]"),
    (ld_map_idx_value(R1, 2, 16), "1861000002000000" "0000000010000000",
     "r1 = map[idx:2][0]+16"),
]

_IDS = [f"{i}:{t}" for i, (_, _, t) in enumerate(GOLDEN)]


@pytest.mark.parametrize("insn,raw,text", GOLDEN, ids=_IDS)
def test_golden_encoding(insn, raw, text):
    assert insn.encode() == h(raw)
    assert assemble([insn]) == h(raw)
    assert decode(h(raw)) == [insn]


@pytest.mark.parametrize("insn,raw,text", GOLDEN, ids=_IDS)
def test_golden_text(insn, raw, text):
    assert disassemble(h(raw)) == [text]
    assert str(insn) == text
    assert listing(h(raw)) == f"0: ({h(raw)[0]:02x}) {text}\n"
    assert parse(text) == [insn]
    assert parse(f"7: ({h(raw)[0]:02x}) {text}") == [insn]


def test_golden_covers_every_form():
    ops = {h(raw)[0] for _, raw, _ in GOLDEN}
    for cls in (Class.ALU, Class.ALU64):
        for op in ALUOp:
            if op not in (ALUOp.NEG, ALUOp.END):
                assert cls | op | Source.K in ops and cls | op | Source.X in ops, (cls, op)
    for cls in (Class.JMP, Class.JMP32):
        for op in set(JumpOp) - {JumpOp.JA, JumpOp.CALL, JumpOp.EXIT, JumpOp.JCOND}:
            assert cls | op | Source.K in ops and cls | op | Source.X in ops, (cls, op)
    for sz in Size:
        assert {Class.LDX | sz | Mode.MEM, Class.STX | sz | Mode.MEM,
                Class.ST | sz | Mode.MEM, Class.STX | sz | Mode.ATOMIC} <= ops
    atomics = {(h(raw)[0], int.from_bytes(h(raw)[4:8], "little")) for _, raw, _ in GOLDEN
               if h(raw)[0] & 0xE7 == Class.STX | Mode.ATOMIC}
    for sz in (Size.W, Size.DW):
        for a in (0x00, 0x40, 0x50, 0xA0, 0x01, 0x41, 0x51, 0xA1, 0xE1, 0xF1, 0x100, 0x110):
            assert (Class.STX | sz | Mode.ATOMIC, a) in atomics, (sz, hex(a))


# The format strings of print_bpf_insn(), Linux 6.18 kernel/bpf/disasm.c, applied
# with Python's % (which shares printf's %02x %d %+d %s %c) to the fields.
def _disasm_c(insn: Insn) -> str:
    c, d, s, off, imm = insn.op, insn.dst, insn.src, insn.off, insn.imm
    cls = c & 7
    wr = "w" if cls in (Class.ALU, Class.JMP32) else "r"
    ldst = {0x00: "u32", 0x08: "u16", 0x10: "u8", 0x18: "u64"}[c & 0x18]
    alu = {0x00: "+=", 0x10: "-=", 0x20: "*=", 0x30: "/=", 0x40: "|=", 0x50: "&=",
           0x60: "<<=", 0x70: ">>=", 0x90: "%=", 0xA0: "^=", 0xB0: "=", 0xC0: "s>>="}
    jmps = {0x10: "==", 0x20: ">", 0x30: ">=", 0x40: "&", 0x50: "!=", 0x60: "s>",
            0x70: "s>=", 0xA0: "<", 0xB0: "<=", 0xC0: "s<", 0xD0: "s<="}
    if cls in (Class.ALU, Class.ALU64):
        op = c & 0xF0
        if op == 0xD0 and cls == Class.ALU64:
            return "(%02x) r%d = bswap%d r%d" % (c, d, imm, d)
        if op == 0xD0:
            return "(%02x) r%d = %s%d r%d" % (c, d, "be" if c & 8 else "le", imm, d)
        if op == 0x80:
            return "(%02x) %c%d = -%c%d" % (c, wr, d, wr, d)
        if c == 0xBF and off == 1:
            return "(%02x) r%d = addr_space_cast(r%d, %u, %u)" % (
                c, d, s, (imm & 0xFFFFFFFF) >> 16, imm & 0xFFFF)
        sym = {0x30: "s/=", 0x90: "s%="}[op] if op in (0x30, 0x90) and off == 1 else alu[op]
        if c & 8:
            sx = {8: "(s8)", 16: "(s16)", 32: "(s32)"}.get(off, "") if op == 0xB0 else ""
            return "(%02x) %c%d %s %s%c%d" % (c, wr, d, sym, sx, wr, s)
        return "(%02x) %c%d %s %d" % (c, wr, d, sym, imm)
    if cls == Class.STX:
        if c & 0xE0 == 0x60:
            return "(%02x) *(%s *)(r%d %+d) = r%d" % (c, ldst, d, off, s)
        w64 = "64" if c & 0x18 == 0x18 else ""
        if imm in (0x00, 0x40, 0x50, 0xA0):
            return "(%02x) lock *(%s *)(r%d %+d) %s r%d" % (c, ldst, d, off, alu[imm], s)
        if imm in (0x01, 0x41, 0x51, 0xA1):
            name = {0x01: "add", 0x41: "or", 0x51: "and", 0xA1: "xor"}[imm]
            return "(%02x) r%d = atomic%s_fetch_%s((%s *)(r%d %+d), r%d)" % (
                c, s, w64, name, ldst, d, off, s)
        if imm == 0xF1:
            return "(%02x) r0 = atomic%s_cmpxchg((%s *)(r%d %+d), r0, r%d)" % (
                c, w64, ldst, d, off, s)
        if imm == 0xE1:
            return "(%02x) r%d = atomic%s_xchg((%s *)(r%d %+d), r%d)" % (
                c, s, w64, ldst, d, off, s)
        if imm == 0x100:
            return "(%02x) r%d = load_acquire((%s *)(r%d %+d))" % (c, d, ldst, s, off)
        return "(%02x) store_release((%s *)(r%d %+d), r%d)" % (c, ldst, d, off, s)
    if cls == Class.ST:
        return "(%02x) *(%s *)(r%d %+d) = %d" % (c, ldst, d, off, imm)
    if cls == Class.LDX:
        if c & 0xE0 == 0x80:
            ldst = {0x00: "s32", 0x08: "s16", 0x10: "s8"}[c & 0x18]
        return "(%02x) r%d = *(%s *)(r%d %+d)" % (c, d, ldst, s, off)
    if cls == Class.LD:
        if c & 0xE0 == 0x20:
            return "(%02x) r0 = *(%s *)skb[%d]" % (c, ldst, imm)
        if c & 0xE0 == 0x40:
            return "(%02x) r0 = *(%s *)skb[r%d + %d]" % (c, ldst, s, imm)
        return "(%02x) r%d = %s" % (c, d, "0x%x" % imm)  # no cb_imm
    op = c & 0xF0
    if op == 0x80:
        if s == 1:
            return "(%02x) call pc%s" % (c, "%+d" % imm)
        name = ("bpf_" + Helper(imm).name) if s == 0 and imm in set(Helper) else (
            "kernel-function" if s == 2 else "unknown")
        return "(%02x) call %s#%d" % (c, name, imm)
    if c == 0x05:
        return "(%02x) goto pc%+d" % (c, off)
    if c == 0xE5:
        return "(%02x) may_goto pc%+d" % (c, off)
    if c == 0x06:
        return "(%02x) gotol pc%+d" % (c, imm)
    if c == 0x95:
        return "(%02x) exit" % c
    if c & 8:
        return "(%02x) if %c%d %s %c%d goto pc%+d" % (c, wr, d, jmps[op], wr, s, off)
    return "(%02x) if %c%d %s 0x%x goto pc%+d" % (c, wr, d, jmps[op], imm & 0xFFFFFFFF, off)


# Rows printed through our cb_imm (pseudo ld_imm64) or with the kfunc " off:" tail
# follow the documented choices in text.py instead.
_KERNEL_ROWS = [(i, r, t) for i, r, t in GOLDEN
                if not (i.op == 0x18 and i.src) and not (i.op == 0x85 and i.src == 2 and i.off)]


@pytest.mark.parametrize("insn,raw,text", _KERNEL_ROWS, ids=[t for _, _, t in _KERNEL_ROWS])
def test_text_matches_disasm_c_format_strings(insn, raw, text):
    assert listing(h(raw)).rstrip("\n") == "0: " + _disasm_c(insn)


# -- (3) labels ---------------------------------------------------------------------


def test_forward_jump():
    code = link([jmp("jeq", R1, 0, "out"), mov(R0, 1), label("out"), exit_insn()])
    assert code[0] == jmp("jeq", R1, 0, 1)
    assert code[0].target is None


def test_backward_jump():
    code = link([label("top"), mov(R0, 1), alu("sub", R1, 1), jmp("jne", R1, 0, "top")])
    assert code[2].off == -3


def test_jumps_across_ld_imm64():
    prog = [ja("end"), ld_imm64(R1, 5), label("end"), ld_map_fd(R2, 3),
            jmp("jeq", R1, R2, "end"), exit_insn()]
    code = link(prog)
    assert code[0].off == 2  # ld_imm64 counts two slots
    assert code[3].off == -3  # from slot 5 back to slot 3
    assert listing(prog).splitlines()[:4] == [
        "0: (05) goto pc+2", "1: (18) r1 = 0x5", "end:", "3: (18) r2 = map[fd:3]"]


def test_label_in_imm_for_gotol_call_and_subprog():
    prog = [call_local("f"), gotol("out"), ld_func(R2, "f"), label("out"), exit_insn(),
            label("f"), mov(R0, 0), exit_insn()]
    code = link(prog)
    # offsets from the slot after the first slot, also for ld_imm64 (kernel: i + imm + 1)
    assert (code[0].imm, code[1].imm, code[2].imm) == (4, 2, 2)
    assert [c.off for c in code[:3]] == [0, 0, 0]
    back = link([label("f"), exit_insn(), call_local("f"), ld_func(R1, "f")])
    assert back[1].imm == -2 and back[2].imm == 0xFFFFFFFD  # ld_imm64 lo word, hi 0
    assert assemble(back)[8:16] == h("85100000feffffff")
    assert str(back[2]) == "r1 = subprog[-3]"


def test_label_object_as_target_and_nested_lists():
    out = label("out")
    assert out == Label("out")
    body = [mov(R0, 0), (ja(out),), [[mov(R0, 1)]]]
    assert assemble([body, out, exit_insn()]) == assemble(
        [mov(R0, 0), ja(1), mov(R0, 1), exit_insn()])


def test_numeric_offsets_unchanged():
    assert jmp("jne", "r8", 1, 2) == Insn(0x55, 8, 0, 2, 1)
    assert assemble([jmp("jne", "r8", 1, 2)]) == h("5508020001000000")


def test_undefined_label_names_instruction():
    with pytest.raises(AsmError, match=r"insn 1 \(slot 1\).*undefined label 'nowhere'") as e:
        assemble([mov(R0, 0), ja("nowhere"), exit_insn()])
    assert e.value.index == 1 and isinstance(e.value, ValueError)
    assert "goto <nowhere>" in str(e.value)


def test_duplicate_label():
    with pytest.raises(AsmError, match=r"insn 1 .*duplicate label 'x'"):
        link([label("x"), mov(R0, 0), label("x"), exit_insn()])


def test_int16_overflow_names_instruction():
    far = [mov(R0, 0)] * 40000
    with pytest.raises(AsmError, match=r"insn 1 \(slot 1\).*outside int16") as e:
        assemble([mov(R1, 1), jmp("jeq", R1, 0, "end"), far, label("end"), exit_insn()])
    assert e.value.index == 1
    code = link([mov(R1, 1), gotol("end"), far, label("end"), exit_insn()])
    assert code[1].imm == 40000
    with pytest.raises(AsmError, match="insn 0 .*outside int16"):
        assemble([jmp("jeq", R1, 0, 1 << 15)])


def test_imm_outside_int32_names_instruction():
    with pytest.raises(AsmError, match=r"insn 2 .*imm 2147483648 outside int32"):
        assemble([mov(R0, 0), mov(R1, 0), mov(R1, 1 << 31), exit_insn()])
    with pytest.raises(AsmError, match="insn 0"):
        assemble([jmp("jeq", R1, 0xFFFFFFFF, 0)])
    assert assemble([ld_imm64(R1, 1 << 63)])  # ld_imm64 takes 64 bits


def test_target_on_insn_without_offset():
    with pytest.raises(AsmError, match="takes none"):
        link([Insn(0xB7, 1, 0, 0, 0, target="x"), label("x")])
    with pytest.raises(AsmError, match="unresolved"):
        ja("x").encode()


def test_not_an_instruction():
    with pytest.raises(AsmError, match="insn 1: not an instruction"):
        assemble([mov(R0, 0), None])


def test_bad_names():
    for bad in (lambda: mov("r11", 0), lambda: mov("x1", 0), lambda: ldx("q", R0, R1, 0),
                lambda: alu("frob", R0, 1), lambda: jmp("jxx", R0, 1, 0),
                lambda: call("no_such_helper"), lambda: atomic("b", "add", R1, R2, 0),
                lambda: movsx(R1, R2, 32, alu32=True), lambda: ldxs("dw", R1, R2, 0),
                lambda: endian(R1, 8, "le"), lambda: endian(R1, 16, "middle"),
                lambda: jmp("call", R0, 0, 0), lambda: mov(R0, 1.5), lambda: label("")):
        with pytest.raises(AsmError):
            bad()


def test_decode_errors():
    with pytest.raises(AsmError, match="multiple of 8"):
        decode(b"\x95" + b"\0" * 6)
    with pytest.raises(AsmError, match="truncated ld_imm64"):
        decode(h("9500000000000000") + h("1801000005000000"))
    with pytest.raises(AsmError, match="second slot"):
        decode(h("1801000005000000") + h("9500000000000000"))


# -- coercers, enums, helpers -------------------------------------------------------


def test_coercers():
    assert reg("r10") is R10 is Reg.R10 and reg(3) is R3 and reg(R4) is R4 and reg("fp") is R10
    assert [size(x) for x in ("b", "h", "w", "dw")] == [Size.B, Size.H, Size.W, Size.DW]
    assert [size(x) for x in ("u8", "u16", "u32", "u64")] == [Size.B, Size.H, Size.W, Size.DW]
    assert size(8) is Size.DW and size(Size.H) is Size.H
    assert alu_op("add") is ALUOp.ADD and alu_op("ARSH") is ALUOp.ARSH
    assert alu_op("+=") is ALUOp.ADD and alu_op(0xB0) is ALUOp.MOV
    assert jump_op("jne") is JumpOp.JNE and jump_op("jsgt") is JumpOp.JSGT
    assert jump_op("!=") is JumpOp.JNE and jump_op("ne") is JumpOp.JNE
    assert helper("seq_printf") is helper("bpf_seq_printf") is Helper.seq_printf
    assert helper(126) is Helper.seq_printf and helper(Helper.d_path) is Helper.d_path
    assert PseudoSrc.CALL == 1 and PseudoSrc.KFUNC_CALL == 2 and PseudoSrc.MAP_IDX_VALUE == 6
    assert AtomicOp.FETCH == 1 and AtomicOp.XCHG == 0xE1 and AtomicOp.CMPXCHG == 0xF1
    assert (AtomicOp.LOAD_ACQ, AtomicOp.STORE_REL) == (0x100, 0x110)
    assert (Mode.MEMSX, Mode.ATOMIC, Class.JMP32) == (0x80, 0xC0, 0x06)


def test_helper_ids():
    # include/uapi/linux/bpf.h ___BPF_FUNC_MAPPER (and KERNEL-NOTES.md)
    known = {"unspec": 0, "map_lookup_elem": 1, "probe_read": 4, "trace_printk": 6,
             "get_current_pid_tgid": 14, "get_current_task": 35, "probe_read_str": 45,
             "probe_read_kernel": 113, "probe_read_kernel_str": 115, "seq_printf": 126,
             "seq_write": 127, "d_path": 147, "seq_printf_btf": 150, "snprintf": 165,
             "loop": 181, "cgrp_storage_delete": 211}
    for name, v in known.items():
        assert Helper[name] == v
    assert [int(x) for x in Helper] == list(range(212))  # 6.18: 0..211, no gaps


def test_insn_properties():
    assert ld_imm64(R1, 1).slots == 2 and mov(R1, 1).slots == 1
    assert ja(1).is_jump and jmp("jeq", R1, 0, 1, jmp32=True).is_jump and gotol(1).is_jump
    assert not call(1).is_jump and not exit_insn().is_jump and not mov(R0, 0).is_jump
    assert stx("w", R10, R1, -4).cls is Class.STX
    assert mov(R0, 0, alu32=True).cls is Class.ALU
    assert mov(R1, 2) == Insn(0xB7, 1, 0, 0, 2)
    assert Insn(0xB7, R1, 0, 0, 2, comment="x") == mov(R1, 2)  # comment not compared


def test_listing_labels_and_comments():
    prog = [mov(R6, R1), Insn(0xB7, 0, 0, 0, 0, comment="return 0"), label("end"), exit_insn()]
    text = listing(prog, labels={0: "entry"})
    assert text == ("entry:\n0: (bf) r6 = r1\n1: (b7) r0 = 0  ; return 0\n"
                    "end:\n2: (95) exit\n")
    assert assemble(parse(text)) == assemble(prog)


def test_parse_hand_written():
    text = """
        start:
          r1 = 0x1234 ll            ; llvm's ld_imm64 suffix
          r2 = 42 ll
          if r1 == 0x0 goto out
          call seq_printf
          call sub
          goto <start>
        out:
          exit
        sub:
          r0 = 0
          exit
    """
    code = parse(text)
    assert code[0] == ld_imm64(R1, 0x1234) and code[1] == ld_imm64(R2, 42)
    assert code[2] == jmp("jeq", R1, 0, 3)
    assert code[3] == call("seq_printf") and code[4] == call_local(2)
    assert code[5] == ja(-8)
    with pytest.raises(AsmError, match="line 2"):
        parse("exit\nr1 = frob r2")
    with pytest.raises(AsmError, match="opcode"):
        parse("0: (b7) r1 = r2")


def test_parse_verifier_kfunc_name():
    # with a cb_call the verifier prints the kfunc's name instead of kernel-function
    assert parse("call bpf_obj_new_impl#59412") == [call_kfunc(59412)]


# -- (4) round trips ------------------------------------------------------------------

regs = st.integers(0, 10).map(Reg)
s16 = st.integers(-(1 << 15), (1 << 15) - 1)
s32 = st.integers(-(1 << 31), (1 << 31) - 1)
u32 = st.integers(0, (1 << 32) - 1)
bools = st.booleans()
sizes = st.sampled_from(list(Size))
plain_alu = st.sampled_from([op for op in ALUOp if op not in (ALUOp.NEG, ALUOp.END)])
cond_jmp = st.sampled_from([op for op in JumpOp if op not in (
    JumpOp.JA, JumpOp.CALL, JumpOp.EXIT, JumpOp.JCOND)])

valid_insns = st.one_of(
    st.builds(lambda o, d, s, w: alu(o, d, s, alu32=w), plain_alu, regs, regs, bools),
    st.builds(lambda o, d, i, w: alu(o, d, i, alu32=w), plain_alu, regs, s32, bools),
    st.builds(lambda o, d, s, w: alu(o, d, s, alu32=w, off=1),
              st.sampled_from(["div", "mod"]), regs, st.one_of(regs, s32), bools),
    st.builds(lambda d, w: neg(d, alu32=w), regs, bools),
    st.builds(endian, regs, st.sampled_from([16, 32, 64]), st.sampled_from(["le", "be", "bswap"])),
    st.builds(lambda d, s, b: movsx(d, s, b), regs, regs, st.sampled_from([8, 16, 32])),
    st.builds(lambda d, s, b: movsx(d, s, b, alu32=True), regs, regs, st.sampled_from([8, 16])),
    st.builds(addr_space_cast, regs, regs, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
    st.builds(lambda o, d, s, t, w: jmp(o, d, s, t, jmp32=w), cond_jmp, regs, regs, s16, bools),
    st.builds(lambda o, d, i, t, w: jmp(o, d, i, t, jmp32=w), cond_jmp, regs, s32, s16, bools),
    st.builds(ja, s16), st.builds(gotol, s32), st.builds(may_goto, s16),
    st.builds(call, st.integers(0, (1 << 31) - 1)), st.builds(call_local, s32),
    st.builds(lambda i, o: call_kfunc(i, off=o), s32, s16), st.just(exit_insn()),
    st.builds(ldx, sizes, regs, regs, s16), st.builds(stx, sizes, regs, regs, s16),
    st.builds(st_imm, sizes, regs, s16, s32),
    st.builds(ldxs, st.sampled_from([Size.B, Size.H, Size.W]), regs, regs, s16),
    st.builds(lambda z, o, d, s, off, f: atomic(z, o, d, s, off, fetch=f),
              st.sampled_from(["w", "dw"]),
              st.sampled_from(["add", "or", "and", "xor", "xchg", "cmpxchg"]),
              regs, regs, s16, bools),
    st.builds(load_acquire, sizes, regs, regs, s16),
    st.builds(store_release, sizes, regs, regs, s16),
    st.builds(ld_abs, st.sampled_from([Size.B, Size.H, Size.W]), s32),
    st.builds(ld_ind, st.sampled_from([Size.B, Size.H, Size.W]), regs, s32),
    st.builds(ld_imm64, regs, st.integers(0, (1 << 64) - 1)),
    st.builds(ld_map_fd, regs, u32), st.builds(ld_map_value, regs, u32, u32),
    st.builds(ld_map_idx, regs, u32), st.builds(ld_map_idx_value, regs, u32, u32),
    st.builds(lambda d, i, f: ld_btf_id(d, i, btf_fd=f), regs, u32, u32),
    st.builds(ld_func, regs, s32),
)


@settings(max_examples=400)
@given(st.lists(valid_insns, max_size=12))
def test_roundtrip_assemble_decode(insns):
    code = assemble(insns)
    assert len(code) == 8 * sum(i.slots for i in insns)
    assert decode(code) == insns


@settings(max_examples=400)
@given(st.lists(valid_insns, max_size=12))
def test_roundtrip_disassemble_parse(insns):
    code = assemble(insns)
    assert assemble(parse(disassemble(code))) == code
    assert assemble(parse(listing(code))) == code
    assert parse(disassemble(insns)) == insns


@given(valid_insns)
def test_encode_matches_uapi_layout(insn):
    raw = insn.encode()
    code, regs_, off, imm = struct.unpack_from("<BBhI", raw)
    assert (code, regs_ & 0xF, regs_ >> 4, off) == (insn.op, insn.dst, insn.src, insn.off)
    if insn.slots == 2:
        assert raw[8:12] == bytes(4)
        assert imm | struct.unpack_from("<I", raw, 12)[0] << 32 == insn.imm
    else:
        assert imm == insn.imm & 0xFFFFFFFF
