"""Tests for iterfs.btf: a pure tier on built fixtures and a kernel tier on vmlinux BTF."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(__file__))

from btf_fixtures import BTFBuilder, info, make_fixture, pack_header  # noqa: E402

from iterfs.btf import (  # noqa: E402
    BTF, BTFError, BTFNotFound, Const, Enum, Enum64, Fwd, Func, FuncProto, Int, Kind, Member,
    MemberInfo, Param, Ptr, Struct, Typedef, Union, VarSecinfo, Void,
)

VMLINUX = "/sys/kernel/btf/vmlinux"
VMLINUX_READABLE = os.access(VMLINUX, os.R_OK)
needs_vmlinux = pytest.mark.skipif(not VMLINUX_READABLE, reason=f"{VMLINUX} not readable")


@pytest.fixture(scope="module")
def fx():
    blob, ids, _ = make_fixture()
    return BTF.from_bytes(blob), ids


# ======================================================================================
# An independent, deliberately naive parser: decodes every record eagerly with
# struct.unpack_from, sharing no code with iterfs.btf.  Used as the oracle for fixtures
# and for the whole vmlinux type table.

_NAIVE_EXTRA = {1: 4, 3: 12, 14: 4, 17: 4}
_NAIVE_PER_VLEN = {4: 12, 5: 12, 6: 8, 13: 8, 15: 12, 19: 12}


def naive_parse(data: bytes, limit: int | None = None):
    """[None, (kind, name, size_or_type, members, byte_offset), ...] indexed by id.

    members: for STRUCT/UNION a list of (name, type, bit_offset, bitfield_size);
    for ENUM/ENUM64 a list of (name, value).  limit: stop before a record that would end
    past this many bytes of the type section.
    """
    _magic, _v, _f, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
        "<HBBIIIII", data, 0)
    types = data[hdr_len + type_off:hdr_len + type_off + type_len]
    strs = data[hdr_len + str_off:hdr_len + str_off + str_len]

    def name(off):
        return strs[off:strs.index(b"\0", off)].decode()

    out = [None]
    off = 0
    while off < len(types):
        name_off, inf, size = struct.unpack_from("<III", types, off)
        kind, vlen, kflag = inf >> 24 & 0x1F, inf & 0xFFFF, inf >> 31
        length = 12 + _NAIVE_EXTRA.get(kind, 0) + vlen * _NAIVE_PER_VLEN.get(kind, 0)
        if limit is not None and off + length > limit:
            break
        members = []
        if kind in (4, 5):
            for k in range(vlen):
                mn, mt, mo = struct.unpack_from("<III", types, off + 12 + 12 * k)
                if kflag:
                    members.append((name(mn), mt, mo & 0xFFFFFF, mo >> 24))
                else:
                    members.append((name(mn), mt, mo, 0))
        elif kind == 6:
            for k in range(vlen):
                en, ev = struct.unpack_from("<Ii" if kflag else "<II", types, off + 12 + 8 * k)
                members.append((name(en), ev))
        elif kind == 19:
            for k in range(vlen):
                en, lo, hi = struct.unpack_from("<III", types, off + 12 + 12 * k)
                v = lo | hi << 32
                if kflag and v >= 1 << 63:
                    v -= 1 << 64
                members.append((name(en), v))
        out.append((kind, name(name_off), size, members, off))
        off += length
    return out


def naive_member_bit_offset(recs, struct_id, member):
    """Hand-derivation: search a struct's members, descending into anonymous ones."""
    for mname, mtype, bit_off, _bf in recs[struct_id][3]:
        if mname == member:
            return bit_off
    for mname, mtype, bit_off, _bf in recs[struct_id][3]:
        if mname == "" and recs[mtype][0] in (4, 5):
            inner = naive_member_bit_offset(recs, mtype, member)
            if inner is not None:
                return bit_off + inner
    return None


def naive_find(recs, name, kind):
    return next(i for i in range(1, len(recs)) if recs[i][0] == kind and recs[i][1] == name)


# ======================================================================================
# Pure tier: fixtures


def test_kind_values_match_uapi():
    assert [k.name for k in Kind] == [
        "UNKN", "INT", "PTR", "ARRAY", "STRUCT", "UNION", "ENUM", "FWD", "TYPEDEF",
        "VOLATILE", "CONST", "RESTRICT", "FUNC", "FUNC_PROTO", "VAR", "DATASEC", "FLOAT",
        "DECL_TAG", "TYPE_TAG", "ENUM64"]
    assert [int(k) for k in Kind] == list(range(20))


def test_fixture_agrees_with_naive_parser(fx):
    btf, ids = fx
    blob, _, _ = make_fixture()
    recs = naive_parse(blob)
    assert len(btf) == len(recs) == ids.last + 1
    for tid in range(1, len(recs)):
        kind, name, _size, members, _ = recs[tid]
        t = btf.type(tid)
        assert (t.id, int(t.kind), t.name) == (tid, kind, name)
        if kind in (4, 5):
            assert [tuple(m) for m in t.members] == members
        if kind in (6, 19):
            assert list(t.values.items()) == members


def test_load_is_lazy(fx):
    blob, ids, _ = make_fixture()
    btf = BTF.from_bytes(blob)
    assert btf._cache == {}
    btf.find("sock")
    assert set(btf._cache) == {ids.sock}


def test_len_void_and_caching(fx):
    btf, ids = fx
    assert len(btf) == ids.last + 1
    void = btf.type(0)
    assert isinstance(void, Void) and void.kind == Kind.UNKN and void.name == "" and void.id == 0
    assert btf.type(ids.sock) is btf.type(ids.sock)
    with pytest.raises(BTFError, match="out of range"):
        btf.type(len(btf))
    with pytest.raises(BTFError, match="out of range"):
        btf.type(-1)
    assert [t.id for t in btf] == list(range(1, len(btf)))


def test_decoded_kinds(fx):
    btf, i = fx
    t = btf.type(i.int)
    assert isinstance(t, Int) and (t.size, t.encoding, t.bits, t.offset, t.signed) == (
        4, 1, 32, 0, True)
    assert btf.type(i.bool).encoding == 4
    assert btf.type(i.char).encoding == 3
    assert btf.type(i.ptr_char) == Ptr(i.ptr_char, Kind.PTR, "", i.char)
    assert btf.type(i.u64) == Typedef(i.u64, Kind.TYPEDEF, "u64", i.__u64)
    assert btf.type(i.const_u64) == Const(i.const_u64, Kind.CONST, "", i.u64)
    assert btf.type(i.volatile_const_u64).kind == Kind.VOLATILE
    assert btf.type(i.restrict_ptr_char).kind == Kind.RESTRICT
    arr = btf.type(i.comm_array)
    assert (arr.kind, arr.type, arr.index_type, arr.nelems) == (Kind.ARRAY, i.char, i.int, 16)
    sc = btf.type(i.sock_common)
    assert isinstance(sc, Struct) and sc.size == 24 and sc.name == "sock_common"
    assert sc.members[3] == Member("skc_state", i.uint, 128, 4)
    assert sc.members[5] == Member("skc_flag", i.uchar, 137, 1)
    assert sc.members[0] == Member("", i.anon_addr_union, 0, 0)
    assert isinstance(btf.type(i.anon_addr_union), Union)
    assert btf.type(i.legacy).members[1] == Member("three", i.int3, 32, 0)  # kflag=0
    e = btf.type(i.tcp_state)
    assert isinstance(e, Enum) and e.size == 4 and not e.signed
    assert e.values == {"TCP_ESTABLISHED": 1, "TCP_SYN_SENT": 2, "TCP_CLOSE": 7}
    assert btf.type(i.signed_enum).signed and btf.type(i.signed_enum).values["NEG"] == -1
    assert btf.type(i.anon_enum).values["ANON_BIG"] == 0xFFFFFFFF
    e64 = btf.type(i.enum64)
    assert isinstance(e64, Enum64) and e64.values == {"BIG_A": 1 << 40, "BIG_MAX": (1 << 64) - 1}
    assert btf.type(i.signed_enum64).values == {"S64_MIN": -(1 << 63), "S64_ONE": 1}
    assert btf.type(i.fwd_only) == Fwd(i.fwd_only, Kind.FWD, "only_fwd", True)
    assert btf.type(i.fwd_later).union is False
    f = btf.type(i.func)
    assert isinstance(f, Func) and (f.type, f.linkage) == (i.proto, 1)
    p = btf.type(i.proto)
    assert isinstance(p, FuncProto) and p.ret == i.int
    assert p.params == (Param("sk", i.ptr_sock), Param("fd", i.int))
    assert btf.type(i.varargs_proto).params[-1] == ("", 0)
    assert btf.type(i.printk).linkage == 2
    v = btf.type(i.var)
    assert (v.kind, v.name, v.type, v.linkage) == (Kind.VAR, "jiffies_like", i.ulong, 1)
    ds = btf.type(i.datasec)
    assert (ds.name, ds.size, ds.vars) == (".data..percpu", 8, (VarSecinfo(i.var, 0, 8),))
    assert (btf.type(i.double).kind, btf.type(i.double).size) == (Kind.FLOAT, 8)
    dt = btf.type(i.decl_tag)
    assert (dt.kind, dt.name, dt.type, dt.component_idx) == (Kind.DECL_TAG, "bpf_kfunc",
                                                             i.func, -1)
    assert btf.type(i.decl_tag_param).component_idx == 0
    tt = btf.type(i.type_tag)
    assert (tt.kind, tt.name, tt.type) == (Kind.TYPE_TAG, "percpu", i.int)


def test_types_are_hashable(fx):
    btf, i = fx
    assert len({btf.type(k) for k in range(len(btf))}) == len(btf)


def test_find(fx):
    btf, i = fx
    assert btf.find("sock").id == i.sock
    assert btf.find("struct sock").id == i.sock
    assert btf.find("sock_t").id == i.sock_t
    assert btf.find("later").id == i.later  # complete definition beats the FWD before it
    assert btf.find("later", Kind.FWD).id == i.fwd_later
    assert btf.find("only_fwd").id == i.fwd_only  # nothing else: the FWD itself
    assert btf.find("dual").id == i.dual_struct  # a data type beats a FUNC
    assert btf.find("dual", Kind.FUNC).id == i.dual_func
    assert btf.find("dual", "func").id == i.dual_func
    assert btf.find("unsigned int").id == i.uint  # two INTs: the lowest id
    assert btf.find("enum tcp_state").id == i.tcp_state
    assert btf.find("bpf_iter_task", Kind.FUNC).id == i.iter_task
    with pytest.raises(BTFNotFound) as err:
        btf.find("no_such_type")
    assert isinstance(err.value, KeyError) and isinstance(err.value, BTFError)
    assert str(err.value).startswith("no type named 'no_such_type'")
    with pytest.raises(BTFNotFound, match="of kind UNION"):
        btf.find("sock", Kind.UNION)
    with pytest.raises(BTFNotFound):
        btf.find("union sock")


def test_find_all(fx):
    btf, i = fx
    assert [t.id for t in btf.find_all("unsigned int")] == [i.uint, i.int3]
    assert [t.id for t in btf.find_all("later")] == [i.fwd_later, i.later]
    assert [t.id for t in btf.find_all("later", Kind.STRUCT)] == [i.later]
    assert [t.id for t in btf.find_all("dual", (Kind.FUNC, Kind.STRUCT))] == [
        i.dual_func, i.dual_struct]
    assert btf.find_all("no_such_type") == []
    assert btf.find_all("") == []


def test_resolve(fx):
    btf, i = fx
    assert btf.resolve(i.volatile_const_u64).id == i.ull
    assert btf.resolve(btf.type(i.u64)).id == i.ull
    assert btf.resolve("u64").id == i.ull
    assert btf.resolve(i.sock).id == i.sock
    assert btf.resolve(i.type_tag).id == i.int
    assert btf.resolve(i.const_sock_common_t).id == i.sock_common
    assert btf.resolve(i.ptr_char).id == i.ptr_char  # pointers are not followed
    assert btf.resolve(0).id == 0


def test_sizeof(fx):
    btf, i = fx
    assert btf.sizeof(i.int) == 4
    assert btf.sizeof(i.ptr_char) == 8
    assert btf.sizeof(i.comm_array) == 16
    assert btf.sizeof(i.matrix) == 48
    assert btf.sizeof("sock") == 64
    assert btf.sizeof("struct sock_common") == 24
    assert btf.sizeof(i.anon_addr_union) == 8
    assert btf.sizeof("u64") == 8
    assert btf.sizeof(i.volatile_const_u64) == 8
    assert btf.sizeof("tcp_state") == 4
    assert btf.sizeof("tcp_state_t") == 4
    assert btf.sizeof("big_flags") == 8
    assert btf.sizeof("double") == 8
    assert btf.sizeof("jiffies_like") == 8
    assert btf.sizeof(".data..percpu") == 8
    assert btf.sizeof(btf.type(i.sock_t)) == 64
    assert btf.ptr_size == 8
    for bad, why in ((0, "void"), (i.fwd_only, "forward"), (i.func, "FUNC"),
                     (i.proto, "FUNC_PROTO")):
        with pytest.raises(BTFError, match=why):
            btf.sizeof(bad)


@pytest.mark.parametrize("struct_, path, expect", [
    ("sock_common", "skc_num", (112, 0, "u16")),
    ("sock_common", "skc_dport", (96, 0, "u16")),
    ("sock_common", "skc_rcv_saddr", (32, 0, "u32")),
    ("sock_common", "skc_addrpair", (0, 0, "u64")),
    ("sock_common", "skc_hash", (64, 0, "uint")),
    ("sock_common", "skc_state", (128, 4, "uint")),
    ("sock_common", "skc_reuse", (132, 3, "uint")),
    ("sock_common", "skc_flag", (137, 1, "uchar")),
    ("sock_common", "pad", (160, 0, "pad_typedef")),
    ("sock", "__sk_common.skc_dport", (96, 0, "u16")),
    ("sock", "__sk_common.skc_num", (112, 0, "u16")),
    ("struct sock", "cm_copy.skc_num", (192 + 112, 0, "u16")),  # const typedef'd struct
    ("sock_t", "comm", (384, 0, "comm_array")),
    ("sock", "comm[3]", (384 + 24, 0, "char")),
    ("sock", "next", (512, 0, "ptr_sock")),
    ("legacy_bits", "three", (34, 3, "int3")),  # kflag=0: bitfield from the INT encoding
    ("bpf_iter__task_file", "fd", (128, 0, "u32")),
    ("bpf_iter__task_file", "file", (192, 0, "ptr_file")),
    ("bpf_iter_meta", "seq_num", (128, 0, "u64")),
])
def test_member(fx, struct_, path, expect):
    btf, i = fx
    bits, bf, tname = expect
    assert btf.member(struct_, path) == MemberInfo(bits, bf, getattr(i, tname))


def test_member_accepts_type_id_and_object(fx):
    btf, i = fx
    want = MemberInfo(112, 0, i.u16)
    assert btf.member(i.sock_common, "skc_num") == want
    assert btf.member(btf.type(i.sock_common), "skc_num") == want
    assert btf.member(i.sock_common_t, "skc_num") == want
    assert btf.member(i.const_sock_common_t, "skc_num") == want
    assert btf.member(i.anon_port_union, "skc_num") == MemberInfo(16, 0, i.u16)


def test_offsetof(fx):
    btf, i = fx
    assert btf.offsetof("sock_common", "skc_num") == 14
    assert btf.offsetof("sock", "__sk_common.skc_dport") == 12
    assert btf.offsetof("sock", "comm") == 48
    assert btf.offsetof("sock", "comm[15]") == 63
    assert btf.offsetof("sock_common", "skc_state") == 16  # a bitfield on a byte boundary
    assert btf.offsetof("bpf_iter__task_file", "task") == 8
    with pytest.raises(BTFError, match="skc_reuse.*bit 132"):
        btf.offsetof("sock_common", "skc_reuse")
    with pytest.raises(BTFError, match="skc_flag"):
        btf.offsetof("sock_common", "skc_flag")


def test_member_errors(fx):
    btf, i = fx
    with pytest.raises(BTFNotFound) as err:
        btf.member("sock", "__sk_common.skc_nope")
    msg = str(err.value)
    assert "sock_common" in msg and "skc_nope" in msg and "sock" in msg
    with pytest.raises(BTFNotFound, match="struct sock .*'nope'"):
        btf.member("sock", "nope")
    with pytest.raises(BTFNotFound, match="not a struct"):
        btf.member("sock", "comm.x")
    with pytest.raises(BTFNotFound, match="PTR"):
        btf.member("sock", "next.comm")  # pointers are not dereferenced
    with pytest.raises(BTFError, match="out of range"):
        btf.member("sock", "comm[16]")
    with pytest.raises(BTFError, match="not an array"):
        btf.member("sock", "__sk_common[1]")
    with pytest.raises(BTFError, match="bitfield"):
        btf.member("sock_common", "skc_state.x")
    with pytest.raises(BTFError, match="not a struct or union"):
        btf.member(i.int, "x")
    with pytest.raises(BTFNotFound, match="no struct or union named 'nope'"):
        btf.member("nope", "x")
    with pytest.raises(BTFNotFound, match="forward declaration"):
        btf.member("only_fwd", "x")
    for bad in ("", "a..b", "comm[x]", "comm[", ".comm", "1abc"):
        with pytest.raises(BTFError, match="bad member path"):
            btf.member("sock", bad)


def test_enums(fx):
    btf, i = fx
    assert btf.enum_value("tcp_state", "TCP_CLOSE") == 7
    assert btf.enum_value("enum tcp_state", "TCP_ESTABLISHED") == 1
    assert btf.enum_value("tcp_state_t", "TCP_SYN_SENT") == 2
    assert btf.enum_value("signed_thing", "NEG") == -1
    assert btf.enum_value("big_flags", "BIG_MAX") == (1 << 64) - 1
    assert btf.enum_value("signed64", "S64_MIN") == -(1 << 63)
    assert btf.enum_value(None, "ANON_ONE") == 1
    assert btf.enum_value(None, "TCP_CLOSE") == 7
    vals = btf.enum_values("tcp_state")
    assert vals == {"TCP_ESTABLISHED": 1, "TCP_SYN_SENT": 2, "TCP_CLOSE": 7}
    vals["X"] = 1  # a copy
    assert "X" not in btf.type(i.tcp_state).values
    with pytest.raises(BTFNotFound, match="TCP_NOPE"):
        btf.enum_value("tcp_state", "TCP_NOPE")
    with pytest.raises(BTFNotFound, match="no enum named 'nope'"):
        btf.enum_values("nope")
    with pytest.raises(BTFNotFound, match="no enum named 'sock'"):
        btf.enum_value("sock", "x")
    with pytest.raises(BTFNotFound):
        btf.enum_value(None, "NOWHERE")


def test_iterator_targets(fx):
    btf, i = fx
    assert btf.iter_target_id("task") == i.iter_task
    assert btf.iter_target_id("task_file") == i.iter_task_file
    assert btf.iter_target_id("task-file") == i.iter_task_file
    ctx = btf.iter_ctx("task-file")
    assert ctx.id == i.ctx_task_file and isinstance(ctx, Struct)
    assert [btf.offsetof(ctx, m) for m in ("meta", "task", "fd", "file")] == [0, 8, 16, 24]
    assert btf.iter_targets() == ["task", "task_file"]
    for missing in ("tcp", "num_new", "orphan"):
        with pytest.raises(BTFNotFound, match=f"no iterator target '{missing}'"):
            btf.iter_target_id(missing)
        with pytest.raises(BTFNotFound, match="iterator target"):
            btf.iter_ctx(missing)


def test_str_at(fx):
    btf, i = fx
    blob, _, b = make_fixture()
    assert btf.str_at(0) == ""
    assert btf.str_at(b.str("sock_common")) == "sock_common"
    assert btf.str_at(b.str("sock_common") + 5) == "common"  # a tail is a string too
    with pytest.raises(BTFError, match="outside the string section"):
        btf.str_at(len(b.strings))


def test_big_endian_fixture_decodes_the_same():
    le = BTF.from_bytes(make_fixture("<")[0])
    be = BTF.from_bytes(make_fixture(">")[0])
    assert be.byte_order == "big" and le.byte_order == "little"
    assert list(be) == list(le)
    assert be.offsetof("sock", "__sk_common.skc_num") == 14


def test_slow_name_index_matches_fast():
    blob, ids, _ = make_fixture()
    fast = BTF(blob)
    slow = BTF(blob, _fast_names=False)
    assert fast._by_name == slow._by_name and fast._dups == slow._dups
    assert fast._dups == {"unsigned int": [ids.uint, ids.int3], "later": [ids.fwd_later,
                                                                             ids.later],
                          "dual": [ids.dual_func, ids.dual_struct]}


def test_non_ascii_names_use_utf8():
    b = BTFBuilder()
    i = b.int("int", 4, signed=True)
    s = b.struct("größe", 4, [("wert", i, 0)])
    btf = BTF.from_bytes(b.build())
    assert btf.find("größe").id == s and btf.offsetof("größe", "wert") == 0


def test_split_btf():
    base_blob, bi, base_b = make_fixture()
    base = BTF.from_bytes(base_blob)
    m = BTFBuilder.split(base_b)
    assert m.start_id == len(base)
    fwd_sock = m.fwd("sock")  # a module FWD of a base struct
    ptr = m.ptr(bi.sock)
    mod = m.struct("mod_thing", 24, [("owner", ptr, 0), ("count", bi.int, 64),
                                     ("", bi.anon_port_union, 96), ("extra", m.next_id + 1, 128)])
    m.typedef("mod_u64", bi.u64)
    m.func("bpf_iter_mod", bi.iter_proto_task)
    m.struct("bpf_iter__mod", 8, [("", bi.meta_union, 0)])
    m.enum("mod_state", {"MOD_ON": 3})
    blob = m.build()
    mbtf = BTF.from_bytes(blob, base=base)
    assert mbtf.start_id == len(base) and len(mbtf) == m.next_id
    assert mbtf.find("mod_thing").id == mod
    assert mbtf.find("sock").id == bi.sock  # the base's definition beats the module's FWD
    assert [t.id for t in mbtf.find_all("sock")] == [bi.sock, fwd_sock]
    assert mbtf.type(bi.sock) is base.type(bi.sock)
    assert mbtf.offsetof("mod_thing", "skc_num") == 14
    assert mbtf.offsetof("mod_thing", "extra") == 16
    assert mbtf.sizeof("mod_u64") == 8
    assert mbtf.member("mod_thing", "owner").type == ptr
    assert mbtf.str_at(base_b.str("sock_common")) == "sock_common"
    assert mbtf.iter_targets() == ["mod", "task", "task_file"]
    assert mbtf.iter_target_id("mod") == mod + 2
    assert mbtf.enum_value(None, "MOD_ON") == 3 and mbtf.enum_value(None, "TCP_CLOSE") == 7
    assert [t.id for t in mbtf] == list(range(mbtf.start_id, len(mbtf)))
    # a split blob may not be read as a base: its strings don't start with ""
    with pytest.raises(BTFError, match="header"):
        BTF.from_bytes(blob)


def test_load_from_file(tmp_path):
    blob, ids, _ = make_fixture()
    p = tmp_path / "fixture.btf"
    p.write_bytes(blob)
    btf = BTF.load(str(p))
    assert btf.find("sock").id == ids.sock and btf.source == str(p)


def test_missing_file_explains_config(tmp_path):
    with pytest.raises(BTFError, match="CONFIG_DEBUG_INFO_BTF"):
        BTF.load(str(tmp_path / "vmlinux"))


def test_unreadable_file_is_btferror(tmp_path):
    with pytest.raises(BTFError, match="cannot read"):
        BTF.load(str(tmp_path))  # a directory


# ---------------------------------------------------------------- malformed inputs


def _types_and_strings(b: BTFBuilder):
    return b.type_section(), b.string_section()


def _blob(types: bytes, strs: bytes, **hdr) -> bytes:
    fields = dict(type_off=0, type_len=len(types), str_off=len(types), str_len=len(strs))
    fields.update(hdr)
    return pack_header(**fields) + types + strs


def _simple():
    b = BTFBuilder()
    b.int("int", 4, signed=True)
    b.ptr(1)
    return b


@pytest.mark.parametrize("mutate, pattern", [
    (lambda d: d[:10], "header: .* shorter than a BTF header"),
    (lambda d: b"\x00\x00" + d[2:], "header: bad magic"),
    (lambda d: d[:2] + b"\x02" + d[3:], "header: unsupported version 2"),
    (lambda d: d[:3] + b"\x01" + d[4:], "header: unsupported flags"),
    (lambda d: d[:4] + struct.pack("<I", 8) + d[8:], "header: hdr_len 8"),
    (lambda d: d[:4] + struct.pack("<I", 1 << 20) + d[8:], "header: hdr_len"),
    (lambda d: d[:12] + struct.pack("<I", 1 << 20) + d[16:], "header: type section"),
    (lambda d: d[:20] + struct.pack("<I", 1 << 20) + d[24:], "header: string section"),
    (lambda d: d[:16] + struct.pack("<I", 1 << 30) + d[20:], "header: string section"),
    (lambda d: d[:8] + struct.pack("<I", 2) + d[12:], "header: type section .* aligned"),
    (lambda d: d[:16] + struct.pack("<I", 0) + d[20:], "header: type section .* overlaps"),
    (lambda d: d[:-1], "header: string section runs past|header: string section"),
])
def test_malformed_header(mutate, pattern):
    blob = _simple().build()
    with pytest.raises(BTFError, match=pattern):
        BTF.from_bytes(mutate(blob))


def test_string_section_rules():
    types, strs = _types_and_strings(_simple())
    with pytest.raises(BTFError, match="header: string section is not NUL-terminated"):
        BTF.from_bytes(_blob(types, strs + b"x"))
    with pytest.raises(BTFError, match="header: string section must start"):
        BTF.from_bytes(_blob(types, b"x" + strs))
    with pytest.raises(BTFError, match="header: string section must start"):
        BTF.from_bytes(_blob(types, b""))


def test_larger_header_is_accepted():
    types, strs = _types_and_strings(_simple())
    blob = pack_header(hdr_len=32, type_len=len(types), str_off=len(types),
                       str_len=len(strs)) + bytes(8) + types + strs
    assert BTF.from_bytes(blob).find("int").size == 4


def test_record_running_past_the_section():
    b = _simple()
    bad = b.raw([0, info(4, vlen=5), 8, 0, 1, 0])  # STRUCT says 5 members, has 1
    with pytest.raises(BTFError, match=rf"type \[{bad}\] STRUCT: record runs past"):
        BTF.from_bytes(b.build())


def test_record_header_cut_short():
    b = _simple()
    types, strs = _types_and_strings(b)
    with pytest.raises(BTFError, match=r"type \[3\]: record header runs past"):
        BTF.from_bytes(_blob(types + struct.pack("<I", 0), strs))


@pytest.mark.parametrize("kind", [0, 20, 31])
def test_unknown_kind(kind):
    b = _simple()
    bad = b.raw([0, info(kind), 0])
    b.int("long", 8)
    with pytest.raises(BTFError, match=rf"type \[{bad}\]: unknown kind {kind}"):
        BTF.from_bytes(b.build())


def test_bad_type_name_offset():
    for fast in (True, False):
        b = _simple()
        bad = b.raw([10_000, info(2), 1])
        with pytest.raises(BTFError, match=rf"type \[{bad}\]: name: string offset 10000"):
            BTF(b.build(), _fast_names=fast)


def test_bad_member_name_offset_is_found_on_decode():
    b = _simple()
    bad = b.raw([0, info(4, vlen=1), 4, 10_000, 1, 0])
    btf = BTF.from_bytes(b.build())
    with pytest.raises(BTFError, match=rf"type \[{bad}\]: member 0: string offset"):
        btf.type(bad)


def test_non_utf8_name():
    b = _simple()
    off = len(b.strings)
    b.strings += b"\xff\xfe\0"
    bad = b.raw([off, info(8), 1])
    with pytest.raises(BTFError, match=rf"type \[{bad}\]: name: .*UTF-8"):
        BTF.from_bytes(b.build())


@pytest.mark.parametrize("make, what", [
    (lambda b: b.ptr(99), "type"),
    (lambda b: b.typedef("t", 99), "type"),
    (lambda b: b.array(1, 99, 4), "index type"),
    (lambda b: b.array(99, 1, 4), "element type"),
    (lambda b: b.struct("s", 4, [("m", 99, 0)]), "member 0 'm'"),
    (lambda b: b.func_proto(1, [("p", 99)]), "parameter 0 'p'"),
    (lambda b: b.func_proto(99, []), "return type"),
    (lambda b: b.func("f", 99), "prototype"),
    (lambda b: b.var("v", 99), "type"),
    (lambda b: b.datasec(".d", 4, [(99, 0, 4)]), "variable 0"),
    (lambda b: b.decl_tag("t", 99), "tagged type"),
])
def test_type_id_out_of_range(make, what):
    b = _simple()
    bad = make(b)
    btf = BTF.from_bytes(b.build())
    with pytest.raises(BTFError, match=rf"type \[{bad}\]: {what} refers to type id 99"):
        btf.type(bad)


def test_bad_int_encoding():
    b = _simple()
    bad = b.int("weird", 4, bits=40)
    bad2 = b.int("weird3", 3)
    btf = BTF.from_bytes(b.build())
    for t in (bad, bad2):
        with pytest.raises(BTFError, match=rf"type \[{t}\] INT"):
            btf.type(t)


def test_typedef_loop():
    b = _simple()
    a = b.typedef("a", 4)
    b.const(a)
    btf = BTF.from_bytes(b.build())
    with pytest.raises(BTFError, match=rf"type \[{a}\] TYPEDEF 'a': .*loop"):
        btf.resolve(a)
    with pytest.raises(BTFError, match=rf"type \[{a}\]"):
        btf.sizeof("a")
    with pytest.raises(BTFError, match=rf"type \[{a}\]"):
        btf.member("a", "x")


def test_array_loop():
    b = _simple()
    arr = b.array(3, 1, 2)  # an array of itself
    btf = BTF.from_bytes(b.build())
    with pytest.raises(BTFError, match=rf"type \[{arr}\] ARRAY"):
        btf.sizeof(arr)


def test_anonymous_member_loops_terminate():
    b = _simple()
    s = b.struct("selfish", 8, [("", 3, 0), ("x", 1, 32)])  # contains itself, anonymously
    btf = BTF.from_bytes(b.build())
    assert btf.offsetof("selfish", "x") == 4
    with pytest.raises(BTFNotFound, match="selfish"):
        btf.member("selfish", "nope")
    # a diamond 40 levels deep: each level has two anonymous members of the next
    b = _simple()
    first = b.next_id
    for k in range(40):
        b.struct(f"level{k}", 4, [("", first + k + 1, 0), ("", first + k + 1, 0)])
    b.struct("bottom", 4, [("y", 1, 0)])
    btf = BTF.from_bytes(b.build())
    with pytest.raises(BTFError, match="nested deeper than"):
        btf.member("level0", "y")
    assert btf.offsetof("level20", "y") == 0
    assert s == 3


# ---------------------------------------------------------------- mutation (hypothesis)


def exercise(data: bytes, base: BTF | None = None, extra_names=()) -> None:
    """Load, decode every type and query it; only BTFError may escape."""
    try:
        btf = BTF.from_bytes(data, base=base)
    except BTFError:
        return
    names: list[str] = list(extra_names)
    composites = []
    for tid in range(len(btf)):
        try:
            t = btf.type(tid)
        except BTFError:
            continue
        if t.name:
            names.append(t.name)
        for op in (btf.resolve, btf.sizeof, btf.kind):
            try:
                op(tid)
            except BTFError:
                pass
        if t.kind in (Kind.STRUCT, Kind.UNION) and len(composites) < 200:
            composites.append(t)
    for t in composites:
        for m in t.members[:8]:
            for path in (m.name, f"{m.name}.{m.name}", f"{m.name}[1]"):
                try:
                    btf.offsetof(t, path)
                except BTFError:
                    pass
    for name in names[:300]:
        for op in (btf.find, btf.find_all, btf.sizeof, btf.enum_values, btf.iter_target_id,
                   btf.iter_ctx, lambda n: btf.member(n, "x.y"),
                   lambda n: btf.enum_value(None, n), lambda n: btf.enum_value(n, n)):
            try:
                op(name)
            except BTFError:
                pass
    btf.iter_targets()
    for off in (0, 1, 7, 1 << 20):
        try:
            btf.str_at(off)
        except BTFError:
            pass


@st.composite
def mutated(draw, data: bytes, lo: int = 0):
    """data with 1-4 edits (bit flips, word stores, truncation, splices) at or after lo."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if len(buf) <= lo:
            break
        # flips and word stores keep the record layout, so they reach the decoders more
        # often than the edits that shift everything after them.
        op = draw(st.sampled_from(["flip", "flip", "word", "word", "word", "truncate",
                                   "splice", "delete", "dup"]))
        pos = draw(st.integers(lo, len(buf) - 1))
        if draw(st.booleans()):
            pos -= (pos - lo) % 4  # aligned: splices and deletions move whole words
        if op == "flip":
            buf[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "word":
            pos -= (pos - lo) % 4
            word = draw(st.sampled_from([0, 1, 2, 3, 0xFFFF, 0xFFFFFFFF, 0x80000000,
                                         0x04000001, 0x0400FFFF, 0x08000000, 0x13000002,
                                         0x1F000000, 0x84000003])
                        | st.integers(0, 0xFFFFFFFF))
            buf[pos:pos + 4] = struct.pack("<I", word)[:len(buf) - pos]
        elif op == "truncate":
            del buf[pos:]
        elif op == "splice":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del buf[pos:pos + draw(st.sampled_from([4, 8, 12]) | st.integers(1, 16))]
        else:
            end = min(len(buf), pos + draw(st.sampled_from([12, 24, 36]) | st.integers(1, 64)))
            buf[pos:pos] = buf[pos:end]
    return bytes(buf)


FIXTURE_BLOB = make_fixture()[0]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated(FIXTURE_BLOB), st.lists(st.text(max_size=12), max_size=3))
def test_mutated_fixture_raises_only_btferror(data, names):
    exercise(data, extra_names=names)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_mutated_fixture_types_raise_only_btferror(data):
    # Mutate only the type section and re-fix the header, so the edits reach the index.
    blob, _, b = make_fixture()
    types, strs = b.type_section(), b.string_section()
    new = data.draw(mutated(types))
    new += bytes(-len(new) % 4)
    exercise(_blob(new, strs))


def _vmlinux_chunk(limit: int = 64 * 1024):
    """(types, strings) of vmlinux BTF: records within the first limit bytes, all strings."""
    with open(VMLINUX, "rb") as f:
        data = f.read()
    hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<IIIII", data, 4)
    recs = naive_parse(data, limit=limit)
    types = data[hdr_len + type_off:hdr_len + type_off + type_len]
    end = len(types) if len(recs) == 1 else recs[-1][4]  # drop the last whole record too
    return types[:end], data[hdr_len + str_off:hdr_len + str_off + str_len]


@pytest.fixture(scope="module")
def vmlinux_chunk():
    if not VMLINUX_READABLE:
        pytest.skip(f"{VMLINUX} not readable")
    return _vmlinux_chunk()


def test_vmlinux_chunk_loads_unmutated(vmlinux_chunk):
    types, strs = vmlinux_chunk
    btf = BTF.from_bytes(_blob(types, strs))
    assert len(btf) > 1000
    assert btf.offsetof("list_head", "prev") == 8


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_mutated_vmlinux_raises_only_btferror(vmlinux_chunk, data):
    types, strs = vmlinux_chunk
    new = data.draw(mutated(types))
    new += bytes(-len(new) % 4)
    exercise(_blob(new, strs))


# ======================================================================================
# Kernel tier: the running kernel's BTF

KERNEL_NOTES_TARGETS = ["task", "task_file", "task_vma", "bpf_map", "bpf_map_elem", "bpf_prog",
                        "bpf_link", "bpf_sk_storage_map", "sockmap", "tcp", "udp", "unix",
                        "netlink", "ipv6_route", "ksym", "cgroup"]


@pytest.fixture(scope="module")
def vmlinux():
    if not VMLINUX_READABLE:
        pytest.skip(f"{VMLINUX} not readable")
    return BTF.vmlinux()


@pytest.fixture(scope="module")
def vmlinux_raw():
    with open(VMLINUX, "rb") as f:
        data = f.read()
    return data, naive_parse(data)


@pytest.mark.kernel
@needs_vmlinux
def test_vmlinux_loads_and_is_cached(vmlinux):
    assert BTF.vmlinux() is vmlinux
    assert len(vmlinux) > 10_000
    assert vmlinux.find("task_struct").kind == Kind.STRUCT


@pytest.mark.kernel
@needs_vmlinux
def test_vmlinux_matches_naive_parser(vmlinux, vmlinux_raw):
    _, recs = vmlinux_raw
    assert len(vmlinux) == len(recs)
    structs = 0
    for tid in range(1, len(recs)):
        kind, name, size, members, _ = recs[tid]
        t = vmlinux.type(tid)
        assert (int(t.kind), t.name) == (kind, name), tid
        if kind in (4, 5):
            assert t.size == size
            structs += 1
            if structs % 50 == 0:
                assert [tuple(m) for m in t.members] == members, tid
                for mname, mtype, bit_off, bf in members:
                    if mname:
                        info_ = vmlinux.member(tid, mname)
                        assert info_.offset_bits == bit_off and info_.type == mtype
        elif kind in (6, 19):
            assert list(t.values.items()) == members, tid
    # the name index agrees too: every named type is found under its name
    by_name: dict[str, list[int]] = {}
    for tid in range(1, len(recs)):
        if recs[tid][1]:
            by_name.setdefault(recs[tid][1], []).append(tid)
    for name, ids in by_name.items():
        assert [t.id for t in vmlinux.find_all(name)] == ids


@pytest.mark.kernel
@needs_vmlinux
def test_vmlinux_slow_name_index_matches_fast(vmlinux, vmlinux_raw):
    slow = BTF(vmlinux_raw[0], _fast_names=False)
    assert slow._by_name == vmlinux._by_name and slow._dups == vmlinux._dups


@pytest.mark.kernel
@needs_vmlinux
def test_uapi_stable_layouts(vmlinux):
    assert vmlinux.sizeof("struct bpf_iter_meta") == 24
    assert [vmlinux.offsetof("bpf_iter_meta", m) for m in ("seq", "session_id", "seq_num")] == [
        0, 8, 16]
    ctx = vmlinux.iter_ctx("task_file")
    assert [vmlinux.offsetof(ctx, m) for m in ("meta", "task", "fd", "file")] == [0, 8, 16, 24]
    elem = vmlinux.iter_ctx("bpf_map_elem")
    assert [vmlinux.offsetof(elem, m) for m in ("map", "key", "value")] == [8, 16, 24]
    assert vmlinux.enum_value("bpf_func_id", "BPF_FUNC_seq_printf") == 126
    assert vmlinux.enum_value("bpf_func_id", "BPF_FUNC_probe_read_kernel_str") == 115
    assert vmlinux.enum_value(None, "TCP_ESTABLISHED") == 1
    assert vmlinux.sizeof("struct sock_common") > 100
    assert vmlinux.member("task_struct", "comm").type == vmlinux.find("task_struct").member_named(
        "comm").type


@pytest.mark.kernel
@needs_vmlinux
def test_skc_num_by_hand(vmlinux, vmlinux_raw):
    _, recs = vmlinux_raw
    sc = naive_find(recs, "sock_common", 4)
    bits = naive_member_bit_offset(recs, sc, "skc_num")
    assert bits is not None and bits % 8 == 0
    assert vmlinux.offsetof("sock_common", "skc_num") == bits // 8
    assert vmlinux.offsetof("sock", "__sk_common.skc_num") == bits // 8
    assert bits // 8 == 14  # skc_addrpair 8 + skc_hash 4 + skc_dport 2, on every 64-bit arch
    sk = naive_find(recs, "sock", 4)
    common = naive_member_bit_offset(recs, sk, "__sk_common")
    assert vmlinux.member("sock", "__sk_common").offset_bits == common
    tcp = naive_find(recs, "tcp_sock", 4)
    assert vmlinux.member(tcp, "inet_conn.icsk_inet.sk.__sk_common.skc_dport").offset_bits == (
        naive_member_bit_offset(recs, sc, "skc_dport"))


@pytest.mark.kernel
@needs_vmlinux
def test_task_struct_offsets_by_hand(vmlinux, vmlinux_raw):
    _, recs = vmlinux_raw
    ts = naive_find(recs, "task_struct", 4)
    for m in ("pid", "tgid", "comm", "real_parent", "mm", "files", "cred", "flags"):
        assert vmlinux.offsetof("task_struct", m) * 8 == naive_member_bit_offset(recs, ts, m), m


@pytest.mark.kernel
@needs_vmlinux
@pytest.mark.parametrize("target", KERNEL_NOTES_TARGETS)
def test_kernel_notes_iterator_targets(vmlinux, target):
    func = vmlinux.type(vmlinux.iter_target_id(target))
    assert func.kind == Kind.FUNC and func.name == f"bpf_iter_{target}"
    ctx = vmlinux.iter_ctx(target.replace("_", "-"))
    assert ctx.name == f"bpf_iter__{target}" and vmlinux.offsetof(ctx, "meta") == 0
    assert target in vmlinux.iter_targets()


@pytest.mark.kernel
@needs_vmlinux
def test_missing_iterator_target(vmlinux):
    with pytest.raises(BTFNotFound, match="running kernel has no iterator target 'no_such'"):
        vmlinux.iter_target_id("no_such")
    for not_a_target in ("num_new", "get_info"):
        with pytest.raises(BTFNotFound):
            vmlinux.iter_target_id(not_a_target)


# ---------------------------------------------------------------- bpftool as the oracle

_BPFTOOL_TYPE = re.compile(r"\[(\d+)\] (\w+) '([^']*)'(.*)")
_BPFTOOL_MEMBER = re.compile(
    r"\t'([^']*)' type_id=(\d+) bits_offset=(\d+)(?: bitfield_size=(\d+))?")


def bpftool_dump():
    out = subprocess.run(["bpftool", "btf", "dump", "file", VMLINUX, "format", "raw"],
                         check=True, capture_output=True, text=True).stdout
    types: dict[int, tuple[str, str, list]] = {}
    cur = None
    for line in out.splitlines():
        m = _BPFTOOL_TYPE.match(line)
        if m:
            cur = []
            name = "" if m.group(3) == "(anon)" else m.group(3)
            types[int(m.group(1))] = (m.group(2), name, cur)
            continue
        m = _BPFTOOL_MEMBER.match(line)
        if m and cur is not None:
            name = "" if m.group(1) == "(anon)" else m.group(1)
            cur.append((name, int(m.group(2)), int(m.group(3)), int(m.group(4) or 0)))
    return types


@pytest.mark.kernel
@needs_vmlinux
@pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool not installed")
def test_vmlinux_matches_bpftool(vmlinux):
    types = bpftool_dump()
    assert max(types) == len(vmlinux) - 1
    for tid, (kind, name, members) in types.items():
        t = vmlinux.type(tid)
        assert (t.kind.name, t.name) == (kind, name), tid
        if kind in ("STRUCT", "UNION"):
            assert [tuple(m) for m in t.members] == members, tid
    ts = next(i for i, (k, n, _) in types.items() if k == "STRUCT" and n == "task_struct")
    for name, _, bits, _ in types[ts][2]:
        if name:
            assert vmlinux.member("task_struct", name).offset_bits == bits


# ---------------------------------------------------------------- module (split) BTF


def _module_btf_paths():
    try:
        return sorted(os.path.join("/sys/kernel/btf", n) for n in os.listdir("/sys/kernel/btf")
                      if n != "vmlinux")
    except OSError:
        return []


@pytest.mark.kernel
@needs_vmlinux
def test_module_btf_is_split_on_vmlinux(vmlinux):
    paths = _module_btf_paths()
    if paths:  # a real module's BTF
        mod = BTF.load(paths[0])
    else:
        # This kernel has no module BTF (/sys/kernel/btf holds only vmlinux): build a split
        # blob the way pahole does for a module, on the real vmlinux as its base.
        from btf_fixtures import BTFBuilder
        b = BTFBuilder(start_id=len(vmlinux), start_str_off=vmlinux._str_end)
        task = vmlinux.find("task_struct", Kind.STRUCT).id
        u32 = vmlinux.find("unsigned int", Kind.INT).id
        ptr = b.ptr(task)
        own = b.struct("iterfs_mod_ctx", 16, [("owner", ptr, 0), ("count", u32, 64)])
        mod = BTF.from_bytes(b.build(), base=vmlinux)
        assert mod.type(own).name == "iterfs_mod_ctx"
        assert mod.member("iterfs_mod_ctx", "count").offset_bits == 64
        assert mod.resolve(mod.type(ptr).type).name == "task_struct"
    assert mod.base is vmlinux and mod.start_id == len(vmlinux)
    assert mod.find("task_struct").id < mod.start_id
    own = next((t for t in mod if t.name), None)
    if own is not None:
        assert own.id in [t.id for t in mod.find_all(own.name)]
    for t in mod:
        if t.kind in (Kind.STRUCT, Kind.UNION):
            for m in t.members:
                mod.type(m.type)


# ---------------------------------------------------------------- pahole as the oracle

PAHOLE_STRUCTS = ["task_struct", "sock_common", "sock", "bpf_iter__task_file",
                  "bpf_iter__bpf_map_elem", "bpf_iter_meta", "sk_buff", "file", "mm_struct",
                  "inet_sock", "tcp_sock", "unix_sock", "netlink_sock", "vm_area_struct"]
_PAHOLE_MEMBER = re.compile(
    r"^\t+[^/]*?\b(\w+)(?:\[\d+\])*(?::\d+)?;\s*/\*\s*(\d+)(?::\s*(\d+))?\s+(\d+)\s*\*/")


def pahole_layouts(structs):
    """{struct: {member path: offset_bits}} from pahole's C output.

    pahole prints nested struct/union definitions inline: the members of an anonymous one
    belong to the enclosing level; those of a named one ("} sk_backlog;") get its name as
    a path prefix ("sk_backlog.len").  Offsets are from the start of the outer struct.
    """
    out = subprocess.run(["pahole", "-C", ",".join(structs), VMLINUX], check=True,
                         capture_output=True, text=True).stdout
    layouts: dict[str, dict[str, int]] = {}
    stack: list[dict[str, int]] = []
    name = None
    for line in out.splitlines():
        m = re.match(r"^(?:struct|union) (\w+) \{", line)
        if m:
            name, stack = m.group(1), [{}]
            continue
        if not stack:
            continue
        if re.match(r"^\t+(?:struct|union) \{", line):
            stack.append({})
            continue
        m = re.match(r"^\t*\}\s*(\w*)", line)
        if m:
            inner = stack.pop()
            if not stack:  # the end of the outer struct
                layouts[name] = inner
                continue
            named = m.group(1) not in ("", "__attribute__")
            prefix = f"{m.group(1)}." if named else ""
            for k, v in inner.items():
                stack[-1].setdefault(prefix + k, v)
            continue
        m = _PAHOLE_MEMBER.match(line)
        if m:
            stack[-1].setdefault(m.group(1), int(m.group(2)) * 8 + int(m.group(3) or 0))
    return layouts


@pytest.mark.kernel
@needs_vmlinux
@pytest.mark.skipif(shutil.which("pahole") is None, reason="pahole not installed")
def test_vmlinux_matches_pahole(vmlinux):
    layouts = pahole_layouts(PAHOLE_STRUCTS)
    assert set(layouts) == set(PAHOLE_STRUCTS)
    checked = 0
    for sname, members in layouts.items():
        for mname, bits in members.items():
            assert vmlinux.member(sname, mname).offset_bits == bits, (sname, mname)
            checked += 1
    assert checked > 500


# ---------------------------------------------------------------- lazy (cold start)
@pytest.mark.kernel
@needs_vmlinux
def test_lazy_btf_indexes_once_on_first_use_from_any_thread(vmlinux):
    import concurrent.futures
    lazy = BTF.lazy(VMLINUX)
    assert lazy.digest == vmlinux.digest and "_by_name" not in lazy.__dict__
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: lazy.iter_target_id("task"), range(8)))
    assert ids == [vmlinux.iter_target_id("task")] * 8
    assert lazy.iter_targets() == vmlinux.iter_targets()
    assert lazy.offsetof("task_struct", "pid") == vmlinux.offsetof("task_struct", "pid")


@pytest.mark.kernel
@needs_vmlinux
def test_primed_targets_answer_without_indexing(vmlinux, tmp_path):
    from iterfs.cache import BuildCache
    cache = BuildCache(str(tmp_path))
    assert not cache.prime(BTF.lazy(VMLINUX))
    cache.remember_targets(vmlinux)
    lazy = BTF.lazy(VMLINUX)
    assert cache.prime(lazy)
    assert lazy.iter_targets() == vmlinux.iter_targets()
    assert lazy.iter_target_id("tcp") == vmlinux.iter_target_id("tcp")
    assert "_by_name" not in lazy.__dict__  # never indexed


def test_lazy_btf_checks_the_header_at_once(tmp_path):
    bad = tmp_path / "bad.btf"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(BTFError, match="not usable BTF"):
        BTF.lazy(str(bad))
