"""Beyond the seed: an iterator program builder with rodata, BTF field paths, seq_printf with
arguments, and a small register/stack allocator.

    p = IterProgram("task")
    task = p.ctx_ptr("task")            # a callee-saved register, typed task_struct *
    p.exit_if_null(task)
    p.seq_printf("%d %s\\n", Field(task, "pid"), Addr(task, "comm"))
    spec = p.build()                    # pure: bytecode + rodata, no kernel objects
"""

from __future__ import annotations

import dataclasses
import re

from .. import asm
from ..btf import BTF, Kind
from ..programs import (MAP_RODATA, MAP_SESSION, SESSION_VALUE, Program,
                        load_iterator_program, target_name)
from . import assemble
from . import iter as it

__all__ = ["IterProgram", "ProgramSpec", "Field", "Addr", "Const", "Stack", "MAX_PRINTF_ARGS"]

MAX_PRINTF_ARGS = 12
# iterators whose final call after an empty walk sees meta->seq_num (u64)-1: the socket
# iterators count their start token and then take it back (measured on tcp, unix, netlink)
SEQ_NUM_DECREMENTED = {"tcp", "udp", "unix", "netlink"}
_SIZES = {1: "b", 2: "h", 4: "w", 8: "dw"}
# bpf_seq_printf's conversions (kernel/bpf/helpers.c bpf_bprintf_prepare)
# the kernel refuses "%s" followed by a letter or digit at run time (-EINVAL, no output)
_S_THEN_ALNUM = re.compile(r"(?<!%)(?:%%)*%[-+0 ]*\d*s[A-Za-z0-9]")
_CONV = re.compile(r"%(%|[-+0 ]*\d*(?:ll|l|h|hh)?[diuxXcs]|p[KxsSBiI]?[46]?)")


@dataclasses.dataclass(frozen=True)
class Field:
    """A struct field's value: reg points to a struct, path is dotted (BTF)."""
    reg: str
    path: str
    struct: str | None = None


@dataclasses.dataclass(frozen=True)
class Addr:
    """A struct field's address (for %s of char arrays, %pI4 of addresses)."""
    reg: str
    path: str
    struct: str | None = None


@dataclasses.dataclass(frozen=True)
class Const:
    value: int


@dataclasses.dataclass(frozen=True)
class Stack:
    """A u64 the program stored at r10 + off."""
    off: int


@dataclasses.dataclass(frozen=True)
class ProgramSpec:
    """A built iterator program: pure data, loadable on any kernel with the same BTF."""
    target: str
    bytecode: bytes
    rodata: bytes
    name: str = ""
    sleepable: bool = False

    def load(self, *, btf: BTF | None = None, log_level: int = 0) -> Program:
        return load_iterator_program(self.bytecode, self.target, prog_name=self.name or None,
                                     btf=btf, rodata=self.rodata or None, log_level=log_level,
                                     sleepable=self.sleepable)


def count_conversions(fmt: str) -> int:
    return sum(1 for m in _CONV.finditer(fmt) if m.group(1) != "%")


class IterProgram:
    """An iterator program under construction. r6 holds ctx, r8 meta; r7 and r9 are handed
    out by reg(); the stack is handed out by stack() from r10 down."""

    def __init__(self, target: str, *, btf: BTF | None = None, name: str = "",
                 sleepable: bool = False):
        self.target = target_name(target)
        self.sleepable = sleepable
        self.btf = btf if btf is not None else BTF.vmlinux()
        self.name = name
        self.items: list = []
        self._rodata = bytearray()
        self._strings: dict[bytes, int] = {}
        self._free = ["r9", "r7"]
        self._types: dict[str, int] = {}
        self._stack = 0
        self._labels = 0
        self.ctx, self.meta = "r6", "r8"
        self.emit(it.iter_prologue_with_meta(self.ctx, self.meta, btf=self.btf))

    # --- allocation ---
    def reg(self) -> str:
        if not self._free:
            raise ValueError(f"{self.target}: out of callee-saved registers (r7, r9)")
        return self._free.pop()

    def release(self, reg: str) -> None:
        self._types.pop(reg, None)
        self._free.append(reg)

    def stack(self, size: int) -> int:
        """Reserve size bytes (8-aligned) of stack; returns the offset from r10."""
        self._stack += -(-size // 8) * 8
        if self._stack > 512:
            raise ValueError(f"{self.target}: stack use {self._stack} > 512 bytes")
        return -self._stack

    # --- emission ---
    def emit(self, *items) -> None:
        self.items.extend(items)

    def label_name(self, stem: str) -> str:
        """A label name unique in this program."""
        self._labels += 1
        return f"__{stem}_{self._labels}"

    def string(self, data: bytes | str) -> int:
        """Offset of a NUL-terminated constant in rodata (deduplicated)."""
        raw = data.encode() if isinstance(data, str) else bytes(data)
        if raw not in self._strings:
            self._strings[raw] = len(self._rodata)
            self._rodata += raw + b"\0"
            self._rodata += b"\0" * (-len(self._rodata) % 8)
        return self._strings[raw]

    def rodata_ptr(self, dst: str, offset: int) -> asm.Insn:
        return asm.ld_imm64(dst, (offset << 32) | MAP_RODATA, src=asm.PseudoSrc.MAP_IDX_VALUE)

    def ctx_ptr(self, field: str, dst: str | None = None) -> str:
        """dst = ctx->field; dst remembers the pointee struct for Field/Addr paths."""
        dst = dst or self.reg()
        m = self.btf.member(f"bpf_iter__{self.target}", field)
        self.emit(asm.ldx("dw", dst, self.ctx, m.offset_bits // 8))
        self._types[dst] = self._pointee(m.type)
        return dst

    def _pointee(self, type_id: int) -> int:
        t = self.btf.resolve(type_id)
        if t.kind != Kind.PTR:
            raise ValueError(f"{self.target}: context field is not a pointer")
        return self.btf.resolve(t.type).id

    def ctx_raw(self, field: str, dst: str | None = None) -> str:
        """dst = ctx->field for context pointers BTF leaves untyped (void *key, *value)."""
        dst = dst or self.reg()
        self.emit(asm.ldx("dw", dst, self.ctx, self.btf.offsetof(f"bpf_iter__{self.target}", field)))
        return dst

    def call_typed(self, helper, arg: str, struct: str, dst: str | None = None) -> str:
        """dst = helper(arg) for helpers returning a BTF-typed pointer or NULL (bpf_skc_to_*);
        the caller null-checks dst."""
        dst = dst or self.reg()
        self.emit(asm.mov("r1", asm.reg(arg)), asm.call(helper), asm.mov(dst, asm.Reg.R0))
        self.typed(dst, struct)
        return dst

    def session(self, dst: str | None = None, *, key: int | None = None) -> str:
        """dst = this iteration session's state: u64[8] zeroed when the session starts (an
        LRU hash keyed by meta->session_id; the zero value comes from rodata). key: an
        8-byte stack slot to use for the key. Call it before the NULL check: the final call
        of a session may need it too. Returns the (callee-saved) register."""
        dst = dst or self.reg()
        key = self.stack(8) if key is None else key
        have = self.label_name("session")
        lookup = [asm.ld_imm64("r1", MAP_SESSION, src=asm.PseudoSrc.MAP_IDX),
                  asm.mov("r2", asm.Reg.R10), asm.alu("add", "r2", key),
                  asm.call(asm.Helper.map_lookup_elem)]
        self.emit(asm.ldx("dw", "r1", self.meta, self.btf.offsetof("bpf_iter_meta", "session_id")),
                  asm.stx("dw", "r10", "r1", key), *lookup, asm.jmp("jne", "r0", 0, have),
                  asm.ld_imm64("r1", MAP_SESSION, src=asm.PseudoSrc.MAP_IDX),
                  asm.mov("r2", asm.Reg.R10), asm.alu("add", "r2", key),
                  self.rodata_ptr("r3", self.string(b"\0" * SESSION_VALUE)), asm.mov("r4", 0),
                  asm.call(asm.Helper.map_update_elem), *lookup,
                  asm.jmp("jne", "r0", 0, have), asm.mov("r0", 0), asm.exit_insn(),
                  asm.label(have), asm.mov(dst, asm.Reg.R0))
        return dst

    def rdonly_cast(self, dst: str, src: str, struct: str, add: int = 0) -> str:
        """dst = bpf_rdonly_cast(src + add, btf_id(struct)): an untrusted read-only BTF
        pointer (loads through it are fault-safe; the verifier inlines the kfunc as a move).
        src may be a plain number, e.g. read with probe_read. Clobbers r0-r5."""
        kfunc = self.btf.find("bpf_rdonly_cast", "func").id
        self.emit(asm.mov("r1", asm.reg(src)))
        if add:
            self.emit(asm.alu("add", "r1", add))
        self.emit(asm.mov("r2", self.btf.resolve(self.btf.find(struct).id).id),
                  asm.call_kfunc(kfunc), asm.mov(dst, asm.Reg.R0))
        self.typed(dst, struct)
        return dst

    def skip_if_null(self, reg: str, label: str) -> None:
        self.emit(asm.jmp("jeq", reg, 0, label))

    def typed(self, reg: str, struct: str) -> None:
        self._types[reg] = self.btf.find(struct).id

    def exit_if_null(self, reg: str) -> None:
        self.emit(it.iter_check_null_and_exit(reg))

    def _walk(self, dst: str, f: Field | Addr):
        """Follow a path like "real_parent->real_cred->uid.val": each "->" loads a pointer
        into dst. Returns the register that holds the last struct's address and its member."""
        struct = f.struct if f.struct is not None else self._types.get(f.reg)
        if struct is None:
            raise ValueError(f"{self.target}: {f.reg} has no known struct type for '{f.path}'")
        *hops, last = f.path.split("->")
        base = f.reg
        for hop in hops:
            m = self.btf.member(struct, hop)
            self.emit(asm.ldx("dw", dst, base, m.offset_bits // 8))
            base, struct = dst, self._pointee(m.type)
        return base, self.btf.member(struct, last)

    def ptr(self, f: Field, dst: str | None = None) -> str:
        """dst = a pointer field; dst remembers the pointee struct."""
        dst = dst or self.reg()
        base, m = self._walk(dst, f)
        self.emit(asm.ldx("dw", dst, base, m.offset_bits // 8))
        self._types[dst] = self._pointee(m.type)
        return dst

    def load(self, dst: str, f: Field) -> None:
        """dst = the field's value (zero- or sign-extended; bitfields extracted)."""
        base, m = self._walk(dst, f)
        t = self.btf.resolve(m.type)
        size = self.btf.sizeof(t)
        if m.bitfield_size:
            # load from the bitfield's first byte: an aligned unit may overlap an earlier
            # member, and the verifier refuses that access
            first, shift = m.offset_bits // 8, m.offset_bits % 8
            width = next(w for w in (1, 2, 4, 8) if 8 * w >= shift + m.bitfield_size)
            self.emit(asm.ldx(_SIZES[width], dst, base, first))
            if shift:
                self.emit(asm.alu("rsh", dst, shift))
            if m.bitfield_size < 8 * width:
                self.emit(asm.alu("and", dst, (1 << m.bitfield_size) - 1) if m.bitfield_size < 32
                          else asm.mov(dst, asm.reg(dst), alu32=True))
            return
        if size not in _SIZES:
            raise ValueError(f"{self.target}: field '{f.path}' is {size} bytes: use Addr for it")
        signed = t.kind == Kind.INT and t.encoding & 1 and size < 4
        load = asm.ldxs if signed else asm.ldx
        self.emit(load(_SIZES[size], dst, base, m.offset_bits // 8))

    def addr(self, dst: str, a: Addr) -> None:
        base, m = self._walk(dst, a)
        if m.offset_bits % 8:
            raise ValueError(f"{self.target}: '{a.path}' is a bitfield: it has no address")
        if base != dst:
            self.emit(asm.mov(dst, asm.reg(base)))
        self.emit(asm.alu("add", dst, m.offset_bits // 8))

    def value(self, dst: str, arg) -> None:
        """dst = arg: int, register name, Field, Addr or Const."""
        if isinstance(arg, Field):
            self.load(dst, arg)
        elif isinstance(arg, Addr):
            self.addr(dst, arg)
        elif isinstance(arg, (int, Const)):
            v = arg.value if isinstance(arg, Const) else arg
            self.emit(asm.mov(dst, v) if -2**31 <= v < 2**31 else asm.ld_imm64(dst, v))
        elif isinstance(arg, Stack):
            self.emit(asm.ldx("dw", dst, "r10", arg.off))
        elif isinstance(arg, str):
            self.emit(asm.mov(dst, asm.reg(arg)))
        else:
            raise TypeError(f"seq_printf argument {arg!r}: int, register, Field, Addr or Const")

    def probe_read(self, dst_off: int, size: int, src: str, src_off: int = 0, *,
                   string: bool = False) -> None:
        """bpf_probe_read_kernel{,_str}(r10 + dst_off, size, src + src_off), for memory BTF
        cannot type. Clobbers r0-r5."""
        self.emit(asm.mov("r3", asm.reg(src)))
        if src_off:
            self.emit(asm.alu("add", "r3", src_off))
        self.emit(asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", dst_off), asm.mov("r2", size),
                  asm.call(asm.Helper.probe_read_kernel_str if string
                           else asm.Helper.probe_read_kernel))

    # --- output ---
    def _check_format(self, fmt: str, args) -> None:
        n = count_conversions(fmt)
        if n != len(args):
            raise ValueError(f"format {fmt!r} has {n} conversions but {len(args)} arguments")
        if n > MAX_PRINTF_ARGS:
            raise ValueError(f"format {fmt!r}: bpf_seq_printf takes at most {MAX_PRINTF_ARGS} arguments")
        if _S_THEN_ALNUM.search(fmt):
            raise ValueError(f"format {fmt!r}: bpf_seq_printf refuses a %s followed by a letter "
                             f"or digit (put a space, punctuation or the end after it)")
        if not fmt.isascii():
            raise ValueError(f"format {fmt!r}: bpf_seq_printf takes printable ASCII only")

    def _printf(self, helper, fmt: str, args, lead) -> None:
        """Pack args into a u64 array on the stack, then helper(*lead, fmt, fmt_size, data,
        data_len); lead is the instructions that set r1 (and r2) before fmt."""
        self._check_format(fmt, args)
        n = len(args)
        off = self.string(fmt)
        data = self.stack(8 * n) if n else 0
        for i, a in enumerate(args):
            self.value("r1", a)
            self.emit(asm.stx("dw", "r10", "r1", data + 8 * i))
        self.emit(*lead)
        fmt_reg, size_reg, data_reg, len_reg = ("r2", "r3", "r4", "r5") if len(lead) == 1 \
            else ("r3", "r4", "r5", None)
        self.emit(self.rodata_ptr(fmt_reg, off))
        if helper == asm.Helper.seq_printf:
            self.emit(asm.mov(size_reg, len(fmt.encode()) + 1))
            if n:
                self.emit(asm.mov(data_reg, asm.Reg.R10), asm.alu("add", data_reg, data),
                          asm.mov(len_reg, 8 * n))
            else:
                self.emit(asm.mov(data_reg, 0), asm.mov(len_reg, 0))
        else:  # bpf_snprintf(str, str_size, fmt, data, data_len)
            if n:
                self.emit(asm.mov("r4", asm.Reg.R10), asm.alu("add", "r4", data), asm.mov("r5", 8 * n))
            else:
                self.emit(asm.mov("r4", 0), asm.mov("r5", 0))
        self.emit(asm.call(helper))
        if n:
            self._stack -= 8 * n  # the array is dead after the call

    def seq_printf(self, fmt: str, *args) -> None:
        """bpf_seq_printf with fmt in rodata and args packed into a u64 array on the stack."""
        self._printf(asm.Helper.seq_printf, fmt, args,
                     [asm.ldx("dw", "r1", self.meta, self.btf.offsetof("bpf_iter_meta", "seq"))])

    def snprintf(self, buf_off: int, size: int, fmt: str, *args) -> None:
        """r0 = bpf_snprintf(r10 + buf_off, size, fmt, args): the length with the NUL."""
        self._printf(asm.Helper.snprintf, fmt, args,
                     [asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", buf_off), asm.mov("r2", size)])

    def seq_write_stack(self, buf_off: int, len_reg: str, max_len: int) -> None:
        """bpf_seq_write(seq, r10 + buf_off, len_reg), len_reg bounded to [0, max_len]."""
        skip = self.label_name("wskip")
        self.emit(asm.jmp("jsgt", len_reg, max_len, skip), asm.jmp("jslt", len_reg, 1, skip),
                  asm.mov("r3", asm.reg(len_reg)),
                  asm.ldx("dw", "r1", self.meta, self.btf.offsetof("bpf_iter_meta", "seq")),
                  asm.mov("r2", asm.Reg.R10), asm.alu("add", "r2", buf_off),
                  asm.call(asm.Helper.seq_write), asm.label(skip))

    def digits(self, dst: str, src: str, *, signed: bool = False, min_width: int = 1,
               scratch: str = "r0") -> None:
        """dst = how many characters "%<min_width>d" (signed) or "%u"/"%lu" prints for src
        (values below 10**19). Branch-free, so the verifier sees one state, not one per
        digit count: dst = 1 + sum over k of ((10**k - 1) - |v|) >> 63. Clobbers scratch, r1."""
        self.emit(asm.mov(dst, 1), asm.mov(scratch, asm.reg(src)))
        if signed:  # a '-' and the magnitude
            self.emit(asm.mov("r1", asm.reg(src)), asm.alu("rsh", "r1", 63),
                      asm.alu("add", dst, asm.Reg.R1),
                      asm.mov("r1", asm.reg(src)), asm.alu("arsh", "r1", 63),
                      asm.alu("xor", scratch, asm.Reg.R1), asm.alu("sub", scratch, asm.Reg.R1))
        for k in range(1, 19):
            lim = 10 ** k - 1
            self.emit(asm.mov("r1", lim) if lim < 2 ** 31 else asm.ld_imm64("r1", lim),
                      asm.alu("sub", "r1", asm.reg(scratch)), asm.alu("rsh", "r1", 63),
                      asm.alu("add", dst, asm.Reg.R1))
        if min_width > 1:
            wide = self.label_name("wide")
            self.emit(asm.jmp("jge", dst, min_width, wide), asm.mov(dst, min_width), asm.label(wide))

    def pad(self, width: int, length: str) -> Stack:
        """A "%s" argument that prints width - length spaces (none when length ≥ width):
        seq_setwidth + seq_pad without formatting the line twice. Clobbers r1, r2."""
        slot = self.stack(8)
        ok = self.label_name("pad")
        self.emit(asm.mov("r2", asm.reg(length)), asm.jmp("jle", "r2", width, ok),
                  asm.mov("r2", width), asm.label(ok),
                  self.rodata_ptr("r1", self.string(" " * width)), asm.alu("add", "r1", asm.Reg.R2),
                  asm.stx("dw", "r10", "r1", slot))
        return Stack(slot)

    def seq_write(self, data: bytes | str) -> None:
        """bpf_seq_write of a constant from rodata."""
        raw = data.encode() if isinstance(data, str) else bytes(data)
        off = self.string(raw)
        self.emit(asm.ldx("dw", "r1", self.meta, self.btf.offsetof("bpf_iter_meta", "seq")),
                  self.rodata_ptr("r2", off), asm.mov("r3", len(raw)),
                  asm.call(asm.Helper.seq_write))

    def seq_write_mem(self, reg: str, size: int) -> None:
        """bpf_seq_write of size bytes a register points at (a key/value buffer, the stack)."""
        self.emit(asm.ldx("dw", "r1", self.meta, self.btf.offsetof("bpf_iter_meta", "seq")),
                  asm.mov("r2", asm.reg(reg)), asm.mov("r3", size), asm.call(asm.Helper.seq_write))

    def header(self, text: str, obj: str | None = None) -> None:
        """Print text once per session: before the first object, or in the final (NULL)
        call of a walk that found none. Without obj (emitted before the object is loaded)
        that is meta->seq_num == 0, right for iterators that count from 0. The socket
        iterators (SEQ_NUM_DECREMENTED) take back their start token, so their final
        call sees -1 after an empty walk and 0 after a walk of one: pass the object
        register and the two calls are told apart. Clobbers r0-r5."""
        skip = self.label_name("header")
        self.emit(it.iter_load_meta_field(self.meta, "r1", "seq_num", btf=self.btf))
        if obj is None:
            self.emit(asm.jmp("jne", "r1", 0, skip))
        else:
            empty = -1 if self.target in SEQ_NUM_DECREMENTED else 0
            seen, out = self.label_name("hdr_obj"), self.label_name("hdr_out")
            self.emit(asm.jmp("jne", obj, 0, seen),
                      asm.jmp("jne", "r1", empty, skip),  # imm sign-extends: -1 is 2**64 - 1
                      asm.ja(out),
                      asm.label(seen), asm.jmp("jne", "r1", 0, skip),
                      asm.label(out))
        self.seq_write(text)
        self.emit(asm.label(skip))

    def build(self, default_action: str = "continue") -> ProgramSpec:
        code = assemble([self.items, it.iter_return(default_action)])
        return ProgramSpec(self.target, code, bytes(self._rodata), self.name, self.sleepable)
