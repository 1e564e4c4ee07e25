"""A tiny BTF blob builder for test fixtures, and the standard fixture built with it."""

from __future__ import annotations

import struct
from types import SimpleNamespace

# Kind numbers from include/uapi/linux/btf.h, spelled out here so that the builder does
# not depend on the module it is used to test.
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)

HEADER = struct.Struct("HBBIIIII")  # magic, version, flags, hdr_len, type_off/len, str_off/len


def pack_header(order: str = "<", *, magic: int = 0xEB9F, version: int = 1, flags: int = 0,
                hdr_len: int = 24, type_off: int = 0, type_len: int = 0, str_off: int = 0,
                str_len: int = 0) -> bytes:
    return struct.pack(order + HEADER.format, magic, version, flags, hdr_len, type_off,
                       type_len, str_off, str_len)


def info(kind: int, vlen: int = 0, kflag: int = 0) -> int:
    return (kflag & 1) << 31 | (kind & 0x1F) << 24 | (vlen & 0xFFFF)


class BTFBuilder:
    """Appends records as lists of u32 words; ids are handed out in order from start_id.

    Ids may be referenced before the type is added (forward references are just numbers).
    A split builder (BTFBuilder.split(base)) starts its ids and string offsets after the
    base's and reuses the base's strings.
    """

    def __init__(self, start_id: int = 1, start_str_off: int = 0,
                 base_strings: dict[str, int] | None = None):
        self.start_id = start_id
        self.start_str_off = start_str_off
        self.records: list[list[int]] = []
        self._base_strings = base_strings or {}
        if start_str_off == 0:
            self.strings = bytearray(b"\0")
            self._strings = {"": 0}
        else:
            self.strings = bytearray()
            self._strings = {}

    @classmethod
    def split(cls, base: BTFBuilder) -> BTFBuilder:
        return cls(base.next_id, base.start_str_off + len(base.strings),
                   {**base._base_strings, **base._strings})

    @property
    def next_id(self) -> int:
        return self.start_id + len(self.records)

    def str(self, s: str) -> int:
        if s in self._base_strings:
            return self._base_strings[s]
        if s not in self._strings:
            self._strings[s] = self.start_str_off + len(self.strings)
            self.strings += s.encode() + b"\0"
        return self._strings[s]

    def raw(self, words: list[int]) -> int:
        """Append one record given as raw words; returns its id."""
        self.records.append([w & 0xFFFFFFFF for w in words])
        return self.next_id - 1

    def _add(self, name: str, kind: int, size_or_type: int, vlen: int = 0, kflag: int = 0,
             extra: list[int] = ()) -> int:
        return self.raw([self.str(name) if name else 0, info(kind, vlen, kflag),
                         size_or_type, *extra])

    # -------------------------------------------------------------- one method per kind
    def int(self, name: str, size: int, *, signed: bool = False, char: bool = False,
            bool_: bool = False, bits: int | None = None, offset: int = 0) -> int:
        enc = (1 if signed else 0) | (2 if char else 0) | (4 if bool_ else 0)
        bits = size * 8 if bits is None else bits
        return self._add(name, INT, size, extra=[enc << 24 | offset << 16 | bits])

    def ptr(self, type_: int) -> int:
        return self._add("", PTR, type_)

    def typedef(self, name: str, type_: int) -> int:
        return self._add(name, TYPEDEF, type_)

    def volatile(self, type_: int) -> int:
        return self._add("", VOLATILE, type_)

    def const(self, type_: int) -> int:
        return self._add("", CONST, type_)

    def restrict(self, type_: int) -> int:
        return self._add("", RESTRICT, type_)

    def type_tag(self, name: str, type_: int) -> int:
        return self._add(name, TYPE_TAG, type_)

    def array(self, elem: int, index: int, nelems: int) -> int:
        return self._add("", ARRAY, 0, extra=[elem, index, nelems])

    def _composite(self, kind: int, name: str, size: int, members, kflag) -> int:
        members = [tuple(m) + (0,) * (4 - len(m)) for m in members]
        if kflag is None:
            kflag = int(any(m[3] for m in members))
        words = []
        for mname, mtype, bit_offset, bitfield_size in members:
            off = bitfield_size << 24 | bit_offset if kflag else bit_offset
            words += [self.str(mname) if mname else 0, mtype, off]
        return self._add(name, kind, size, len(members), kflag, words)

    def struct(self, name: str, size: int, members, kflag: int | None = None) -> int:
        """members: (name, type, bit_offset[, bitfield_size]); kflag set if any bitfield."""
        return self._composite(STRUCT, name, size, members, kflag)

    def union(self, name: str, size: int, members, kflag: int | None = None) -> int:
        return self._composite(UNION, name, size, members, kflag)

    def enum(self, name: str, values: dict[str, int], size: int = 4,
             signed: bool | None = None) -> int:
        signed = any(v < 0 for v in values.values()) if signed is None else signed
        words = []
        for k, v in values.items():
            words += [self.str(k), v & 0xFFFFFFFF]
        return self._add(name, ENUM, size, len(values), int(signed), words)

    def enum64(self, name: str, values: dict[str, int], size: int = 8,
               signed: bool | None = None) -> int:
        signed = any(v < 0 for v in values.values()) if signed is None else signed
        words = []
        for k, v in values.items():
            v &= (1 << 64) - 1
            words += [self.str(k), v & 0xFFFFFFFF, v >> 32]
        return self._add(name, ENUM64, size, len(values), int(signed), words)

    def fwd(self, name: str, union: bool = False) -> int:
        return self._add(name, FWD, 0, kflag=int(union))

    def func(self, name: str, proto: int, linkage: int = 1) -> int:
        return self._add(name, FUNC, proto, vlen=linkage)

    def func_proto(self, ret: int, params) -> int:
        words = []
        for pname, ptype in params:
            words += [self.str(pname) if pname else 0, ptype]
        return self._add("", FUNC_PROTO, ret, len(params), extra=words)

    def var(self, name: str, type_: int, linkage: int = 1) -> int:
        return self._add(name, VAR, type_, extra=[linkage])

    def datasec(self, name: str, size: int, vars_) -> int:
        words = []
        for v in vars_:
            words += list(v)
        return self._add(name, DATASEC, size, len(vars_), extra=words)

    def float(self, name: str, size: int) -> int:
        return self._add(name, FLOAT, size)

    def decl_tag(self, name: str, type_: int, component_idx: int = -1) -> int:
        return self._add(name, DECL_TAG, type_, extra=[component_idx & 0xFFFFFFFF])

    # -------------------------------------------------------------- output
    def type_section(self, order: str = "<") -> bytes:
        words = [w for r in self.records for w in r]
        return struct.pack(f"{order}{len(words)}I", *words)

    def string_section(self) -> bytes:
        return bytes(self.strings)

    def build(self, order: str = "<", **header) -> bytes:
        """Header + type section + string section; header fields may be overridden."""
        types, strs = self.type_section(order), self.string_section()
        fields = dict(type_off=0, type_len=len(types), str_off=len(types), str_len=len(strs))
        fields.update(header)
        return pack_header(order, **fields) + types + strs


def make_fixture(order: str = "<"):
    """The standard fixture: (blob, ids) where ids names every type id by role.

    Layout (bit offsets) of the structs, as a C compiler for x86-64 would lay them out:

        struct sock_common {                       // size 24
            union {                                 //   @0
                u64 skc_addrpair;
                struct { u32 skc_daddr; u32 skc_rcv_saddr; };   // skc_rcv_saddr @32
            };
            unsigned int skc_hash;                  //   @64
            union {                                 //   @96
                u32 skc_portpair;
                struct { u16 skc_dport; u16 skc_num; };         // @96, @112
            };
            unsigned int skc_state:4, skc_reuse:3;  //   @128 bitfield 4, @132 bitfield 3
            unsigned char skc_flag:1;               //   @137 (kflag bitfield, not byte aligned)
            sock_common_pad pad;                    //   @160 (u32 through typedef)
        };
        struct sock {                              // size 64
            struct sock_common __sk_common;         //   @0
            const sock_common_t cm_copy;            //   @192 (const typedef → struct)
            char comm[16];                          //   @384
            struct sock *next;                      //   @512
        };
    """
    b = BTFBuilder()
    i = SimpleNamespace()
    i.int = b.int("int", 4, signed=True)
    i.uint = b.int("unsigned int", 4)
    i.char = b.int("char", 1, signed=True, char=True)
    i.uchar = b.int("unsigned char", 1)
    i.ushort = b.int("short unsigned int", 2)
    i.ulong = b.int("long unsigned int", 8)
    i.long = b.int("long int", 8, signed=True)
    i.ull = b.int("long long unsigned int", 8)
    i.bool = b.int("_Bool", 1, bool_=True)
    # typedef chain: u64 → __u64 → unsigned long long; volatile const u64 on top.
    i.__u64 = b.typedef("__u64", i.ull)
    i.u64 = b.typedef("u64", i.__u64)
    i.const_u64 = b.const(i.u64)
    i.volatile_const_u64 = b.volatile(i.const_u64)
    i.u32 = b.typedef("u32", i.uint)
    i.u16 = b.typedef("u16", i.ushort)
    i.ptr_char = b.ptr(i.char)
    i.restrict_ptr_char = b.restrict(i.ptr_char)
    i.comm_array = b.array(i.char, i.int, 16)
    i.matrix = b.array(i.comm_array, i.int, 3)  # char[3][16]
    i.pad_typedef = b.typedef("sock_common_pad", i.u32)
    # struct sock_common and its anonymous parts
    i.anon_addr_struct = b.struct("", 8, [("skc_daddr", i.u32, 0), ("skc_rcv_saddr", i.u32, 32)])
    i.anon_addr_union = b.union("", 8, [("skc_addrpair", i.u64, 0), ("", i.anon_addr_struct, 0)])
    i.anon_port_struct = b.struct("", 4, [("skc_dport", i.u16, 0), ("skc_num", i.u16, 16)])
    i.anon_port_union = b.union("", 4, [("skc_portpair", i.u32, 0), ("", i.anon_port_struct, 0)])
    i.sock_common = b.struct("sock_common", 24, [
        ("", i.anon_addr_union, 0),
        ("skc_hash", i.uint, 64),
        ("", i.anon_port_union, 96),
        ("skc_state", i.uint, 128, 4),
        ("skc_reuse", i.uint, 132, 3),
        ("skc_flag", i.uchar, 137, 1),
        ("pad", i.pad_typedef, 160),
    ])
    i.sock_common_t = b.typedef("sock_common_t", i.sock_common)
    i.const_sock_common_t = b.const(i.sock_common_t)
    ptr_sock = b.next_id + 1  # forward reference: the PTR added right after struct sock
    i.sock = b.struct("sock", 64, [
        ("__sk_common", i.sock_common, 0),
        ("cm_copy", i.const_sock_common_t, 192),
        ("comm", i.comm_array, 384),
        ("next", ptr_sock, 512),
    ])
    i.ptr_sock = b.ptr(i.sock)
    assert i.ptr_sock == ptr_sock
    i.sock_t = b.typedef("sock_t", i.sock)
    # legacy (kflag=0) bitfield: the member's INT type carries bits and offset
    i.int3 = b.int("unsigned int", 4, bits=3, offset=2)
    i.legacy = b.struct("legacy_bits", 8, [("whole", i.uint, 0), ("three", i.int3, 32)],
                        kflag=0)
    # enums
    i.tcp_state = b.enum("tcp_state", {"TCP_ESTABLISHED": 1, "TCP_SYN_SENT": 2,
                                       "TCP_CLOSE": 7})
    i.anon_enum = b.enum("", {"ANON_ONE": 1, "ANON_BIG": 0xFFFFFFFF})
    i.signed_enum = b.enum("signed_thing", {"NEG": -1, "POS": 5})
    i.enum64 = b.enum64("big_flags", {"BIG_A": 1 << 40, "BIG_MAX": (1 << 64) - 1})
    i.signed_enum64 = b.enum64("signed64", {"S64_MIN": -(1 << 63), "S64_ONE": 1})
    i.enum_typedef = b.typedef("tcp_state_t", i.tcp_state)
    # functions
    i.proto = b.func_proto(i.int, [("sk", i.ptr_sock), ("fd", i.int)])
    i.varargs_proto = b.func_proto(0, [("fmt", i.ptr_char), ("", 0)])
    i.func = b.func("do_sock_thing", i.proto, linkage=1)
    i.printk = b.func("printk_like", i.varargs_proto, linkage=2)
    # forward declarations: one completed later, one never
    i.fwd_later = b.fwd("later")
    i.fwd_only = b.fwd("only_fwd", union=True)
    i.later = b.struct("later", 4, [("x", i.int, 0)])
    # iterator targets: FUNC bpf_iter_<t> + STRUCT bpf_iter__<t>
    i.seq_file_fwd = b.fwd("seq_file")
    i.ptr_seq_file = b.ptr(i.seq_file_fwd)
    i.bpf_iter_meta = b.struct("bpf_iter_meta", 24, [
        ("seq", i.ptr_seq_file, 0), ("session_id", i.u64, 64), ("seq_num", i.u64, 128)])
    i.ptr_meta = b.ptr(i.bpf_iter_meta)
    i.meta_union = b.union("", 8, [("meta", i.ptr_meta, 0)])
    i.task_fwd = b.fwd("task_struct")
    i.ptr_task = b.ptr(i.task_fwd)
    i.task_union = b.union("", 8, [("task", i.ptr_task, 0)])
    i.file_fwd = b.fwd("file")
    i.ptr_file = b.ptr(i.file_fwd)
    i.file_union = b.union("", 8, [("file", i.ptr_file, 0)])
    i.ctx_task = b.struct("bpf_iter__task", 16, [("", i.meta_union, 0), ("", i.task_union, 64)])
    i.ctx_task_file = b.struct("bpf_iter__task_file", 32, [
        ("", i.meta_union, 0), ("", i.task_union, 64), ("fd", i.u32, 128),
        ("", i.file_union, 192)])
    i.ptr_ctx_task = b.ptr(i.ctx_task)
    i.ptr_ctx_task_file = b.ptr(i.ctx_task_file)
    i.iter_proto_task = b.func_proto(i.int, [("ctx", i.ptr_ctx_task)])
    i.iter_proto_task_file = b.func_proto(i.int, [("ctx", i.ptr_ctx_task_file)])
    i.iter_task = b.func("bpf_iter_task", i.iter_proto_task, linkage=0)
    i.iter_task_file = b.func("bpf_iter_task_file", i.iter_proto_task_file, linkage=0)
    i.kfunc_num_new = b.func("bpf_iter_num_new", i.proto)  # an open-coded iterator kfunc
    i.ctx_orphan = b.struct("bpf_iter__orphan", 8, [("", i.meta_union, 0)])  # no FUNC
    # the rest of the kinds
    i.var = b.var("jiffies_like", i.ulong, linkage=1)
    i.datasec = b.datasec(".data..percpu", 8, [(i.var, 0, 8)])
    i.double = b.float("double", 8)
    i.decl_tag = b.decl_tag("bpf_kfunc", i.func, -1)
    i.decl_tag_param = b.decl_tag("nonnull", i.func, 0)
    i.type_tag = b.type_tag("percpu", i.int)
    i.ptr_type_tag = b.ptr(i.type_tag)
    # same name, two kinds: a FUNC and a STRUCT both called "dual"
    i.dual_func = b.func("dual", i.proto)
    i.dual_struct = b.struct("dual", 4, [("d", i.int, 0)])
    i.last = b.next_id - 1
    return b.build(order), i, b
