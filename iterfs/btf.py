"""BTF reader: header checks, a one-pass type index, lazy type decoding, member offsets."""

from __future__ import annotations

import hashlib
import re
import struct
import sys
import threading
from array import array
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Iterator, NamedTuple

__all__ = [
    "BTF", "BTFError", "BTFNotFound", "Kind", "Linkage", "IntEncoding",
    "Type", "Void", "Int", "Ptr", "Array", "Struct", "Union", "Enum", "Enum64", "Fwd",
    "Typedef", "Volatile", "Const", "Restrict", "TypeTag", "Func", "FuncProto", "Var",
    "Datasec", "Float", "DeclTag", "Member", "Param", "VarSecinfo", "MemberInfo",
    "VMLINUX_PATH", "MAX_RESOLVE_DEPTH",
]

VMLINUX_PATH = "/sys/kernel/btf/vmlinux"
BTF_MAGIC = 0xEB9F
BTF_VERSION = 1
# libbpf's MAX_RESOLVE_DEPTH: bounds every walk along type references (typedef chains,
# arrays of arrays, nested anonymous members), so a loop in malformed input is an error.
MAX_RESOLVE_DEPTH = 32


class BTFError(Exception):
    """Malformed or unusable BTF; the message names the type id (or "header")."""


class BTFNotFound(BTFError, KeyError):
    """A name, member, enumerator or iterator target that this BTF does not have."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return Exception.__str__(self)


class Kind(IntEnum):
    """BTF_KIND_* from include/uapi/linux/btf.h."""

    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


class IntEncoding(IntEnum):
    """BTF_INT_* encoding bits of an INT type."""

    NONE = 0
    SIGNED = 1
    CHAR = 2
    BOOL = 4


class Linkage(IntEnum):
    """BTF_FUNC_* / BTF_VAR_* linkage (the two enums share their values)."""

    STATIC = 0
    GLOBAL = 1
    EXTERN = 2


# --------------------------------------------------------------------------------------
# Type values.  Every field that refers to another type holds its id (an int), as in the
# raw records; BTF.type(id) turns it into an object.  Objects are frozen and cached per
# BTF instance, so identity comparison works within one BTF.


class Member(NamedTuple):
    """struct btf_member, with the offset split according to the owner's kflag."""

    name: str
    type: int
    bit_offset: int
    bitfield_size: int  # 0: not a bitfield (or a kflag=0 struct: see BTF.member)


class Param(NamedTuple):
    """struct btf_param; the last one is (\"\", 0) for a variadic function."""

    name: str
    type: int


class VarSecinfo(NamedTuple):
    """struct btf_var_secinfo."""

    type: int
    offset: int
    size: int


class MemberInfo(NamedTuple):
    """Where BTF.member found a (possibly nested) member."""

    offset_bits: int  # from the start of the outermost struct
    bitfield_size: int  # 0 unless a bitfield
    type: int  # id of the member's (unresolved) type


@dataclass(frozen=True, slots=True)
class Type:
    id: int
    kind: Kind
    name: str


@dataclass(frozen=True, slots=True)
class Void(Type):
    """Type id 0. BTF.type(0) returns one of these (kind UNKN, name "")."""


@dataclass(frozen=True, slots=True)
class Int(Type):
    size: int
    encoding: int  # IntEncoding bits
    bits: int
    offset: int

    @property
    def signed(self) -> bool:
        return bool(self.encoding & IntEncoding.SIGNED)


@dataclass(frozen=True, slots=True)
class _Ref(Type):
    type: int


@dataclass(frozen=True, slots=True)
class Ptr(_Ref):
    pass


@dataclass(frozen=True, slots=True)
class Typedef(_Ref):
    pass


@dataclass(frozen=True, slots=True)
class Volatile(_Ref):
    pass


@dataclass(frozen=True, slots=True)
class Const(_Ref):
    pass


@dataclass(frozen=True, slots=True)
class Restrict(_Ref):
    pass


@dataclass(frozen=True, slots=True)
class TypeTag(_Ref):
    pass


@dataclass(frozen=True, slots=True)
class Array(Type):
    type: int
    index_type: int
    nelems: int


@dataclass(frozen=True, slots=True)
class _Composite(Type):
    size: int
    members: tuple[Member, ...]

    def member_named(self, name: str) -> Member | None:
        """The direct member called name (no search through anonymous members)."""
        for m in self.members:
            if m.name == name:
                return m
        return None


@dataclass(frozen=True, slots=True)
class Struct(_Composite):
    pass


@dataclass(frozen=True, slots=True)
class Union(_Composite):
    pass


@dataclass(frozen=True, slots=True)
class _EnumBase(Type):
    size: int
    signed: bool
    values: dict[str, int] = field(hash=False, compare=False)


@dataclass(frozen=True, slots=True)
class Enum(_EnumBase):
    pass


@dataclass(frozen=True, slots=True)
class Enum64(_EnumBase):
    pass


@dataclass(frozen=True, slots=True)
class Fwd(Type):
    union: bool


@dataclass(frozen=True, slots=True)
class Func(Type):
    type: int  # FUNC_PROTO id
    linkage: int


@dataclass(frozen=True, slots=True)
class FuncProto(Type):
    ret: int
    params: tuple[Param, ...]


@dataclass(frozen=True, slots=True)
class Var(Type):
    type: int
    linkage: int


@dataclass(frozen=True, slots=True)
class Datasec(Type):
    size: int
    vars: tuple[VarSecinfo, ...]


@dataclass(frozen=True, slots=True)
class Float(Type):
    size: int


@dataclass(frozen=True, slots=True)
class DeclTag(Type):
    type: int
    component_idx: int  # -1: the type itself; else a member/param index


TypeLike = Type | int | str

_MODIFIERS = frozenset({Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG})
_COMPOSITE = (Kind.STRUCT, Kind.UNION)
_SIZED = frozenset({Kind.INT, Kind.ENUM, Kind.ENUM64, Kind.STRUCT, Kind.UNION, Kind.FLOAT,
                    Kind.DATASEC})
_REF_CLASSES = {Kind.PTR: Ptr, Kind.TYPEDEF: Typedef, Kind.VOLATILE: Volatile,
                Kind.CONST: Const, Kind.RESTRICT: Restrict, Kind.TYPE_TAG: TypeTag}
# find() without a kind: when several types share a name, the lowest rank wins (then the
# lowest id): data types, then FUNC/VAR/DATASEC, then tags, and a FWD only as a last resort.
_FIND_RANK = {Kind.FUNC: 1, Kind.VAR: 1, Kind.DATASEC: 1, Kind.DECL_TAG: 2,
              Kind.TYPE_TAG: 2, Kind.FWD: 3}
_C_PREFIX = {"struct": (Kind.STRUCT,), "union": (Kind.UNION,), "enum": (Kind.ENUM, Kind.ENUM64)}

# Record layout, in 32-bit words (include/uapi/linux/btf.h):
#
#   word 0  name_off
#   word 1  info:  bit 31 kind_flag | bits 24-28 kind | bits 0-15 vlen
#   word 2  size or type
#   then    INT +1 (encoding<<24 | offset<<16 | bits), ARRAY +3 (type, index_type,
#           nelems), VAR +1 (linkage), DECL_TAG +1 (component_idx), and vlen times:
#           STRUCT/UNION/DATASEC/ENUM64 3 words, ENUM/FUNC_PROTO 2 words.
_FIXED_WORDS = (None, 4, 3, 6, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 3, 3, 4, 3, 3) + (None,) * 12
_VLEN_WORDS = (0, 0, 0, 0, 3, 3, 2, 0, 0, 0, 0, 0, 0, 2, 0, 3, 0, 0, 0, 3) + (0,) * 12


class _UnknownKind(Exception):
    pass


class _RecordWords(dict):
    """info word → record length in words; the index pass's only per-record lookup.

    A dict hit is cheaper than decoding kind and vlen from info each time, and a few
    hundred distinct info values cover all of vmlinux.
    """

    def __missing__(self, info: int) -> int:
        kind = info >> 24 & 0x1F
        fixed = _FIXED_WORDS[kind]
        if fixed is None:
            raise _UnknownKind(kind)
        words = self[info] = fixed + (info & 0xFFFF) * _VLEN_WORDS[kind]
        return words


def _s32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


_PATH_COMPONENT = re.compile(r"((?!\d)[\w$]+)((?:\[\d+\])*)\Z")  # name, then [i][j]...


class BTF:
    """One BTF blob: a base (vmlinux) or a split BTF (a module) on top of a base.

    Ids: 0 is void, base types (if split) are 1..start_id-1, this blob's types follow;
    len(btf) is the number of ids including void and the base's (libbpf's
    btf__type_cnt), so valid ids are range(len(btf)).
    """

    # Loading follows libbpf btf.c (header checks, then one walk over the type section
    # recording where each record starts) with cilium/ebpf's laziness: a record is decoded
    # into a Type only when asked for, and then cached.  The walk keeps nothing but the
    # record offsets; the name index (name → ids) is built from the name_off word of each
    # record against the string section decoded once as a whole.  Every reference to
    # another type is checked when its record is decoded, so a bad id fails there, naming
    # the record that holds it.  vmlinux (126k types) loads in about 0.17 s.

    _vmlinux: BTF | None = None
    _vmlinux_lock = threading.Lock()

    _targets: dict[str, int] | None = None  # iterator target -> FUNC id, if primed

    # ---------------------------------------------------------------- construction
    @classmethod
    def load(cls, path: str = VMLINUX_PATH, base: BTF | None = None) -> BTF:
        """Read a raw BTF file (as in /sys/kernel/btf/).

        A file in /sys/kernel/btf/ other than vmlinux is module BTF, split on vmlinux:
        when base is None it gets BTF.vmlinux() as its base.
        """
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            if path == VMLINUX_PATH:
                raise BTFError(
                    f"{path} does not exist: the running kernel needs CONFIG_DEBUG_INFO_BTF=y "
                    "(or pass the path of a BTF file)") from None
            raise BTFError(f"no BTF file at {path} (give the path of a raw BTF file; the "
                           f"running kernel's is {VMLINUX_PATH}, there with "
                           "CONFIG_DEBUG_INFO_BTF=y)") from None
        except OSError as e:
            raise BTFError(f"cannot read BTF from {path}: {e.strerror or e} (give a raw BTF "
                           f"file, such as {VMLINUX_PATH})") from None
        if base is None and path.startswith("/sys/kernel/btf/") and path != VMLINUX_PATH:
            base = cls.vmlinux()
        try:
            return cls.from_bytes(data, base=base, _source=path)
        except BTFError as e:  # name the file and what it should be, in one line
            why = str(e).removesuffix(f": {path} is not BTF")
            raise BTFError(f"{path} is not usable BTF ({why}): give a complete raw BTF file, "
                           f"such as {VMLINUX_PATH}") from None

    @classmethod
    def from_bytes(cls, data: bytes, base: BTF | None = None, *, _source: str = "<bytes>") -> BTF:
        return cls(bytes(data), base, _source)

    @classmethod
    def lazy(cls, path: str = VMLINUX_PATH) -> BTF:
        """load(path), but indexed on first use (the header is checked now): a start whose
        programs all come from the build cache needs only the digest and the iterator
        targets, which prime_targets() can supply."""
        full = cls.load  # same errors, same messages, for a missing or malformed file
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return full(path)
        if path.startswith("/sys/kernel/btf/") and path != VMLINUX_PATH:
            return full(path)  # split BTF: its base is indexed anyway
        btf = _LazyBTF(data, path)
        try:
            btf._parse_header(data)
        except BTFError:
            return full(path)
        return btf

    @classmethod
    def vmlinux(cls) -> BTF:
        """The running kernel's BTF, loaded once per process."""
        with cls._vmlinux_lock:
            if cls._vmlinux is None:
                cls._vmlinux = cls.load(VMLINUX_PATH)
            return cls._vmlinux

    @classmethod
    def forget_vmlinux(cls) -> None:
        """Drop the process-wide copy (a process that builds nothing more frees ~30 MiB)."""
        with cls._vmlinux_lock:
            cls._vmlinux = None

    def __init__(self, data: bytes, base: BTF | None = None, source: str = "<bytes>",
                 *, _fast_names: bool = True):
        self.source = source
        self.base = base
        self._raw = data
        self._digest: str | None = None
        self.start_id = len(base) if base is not None else 1
        self.start_str_off = base._str_end if base is not None else 0
        self._cache: dict[int, Type] = {}
        self._enumerators: dict[str, list[tuple[int, int]]] | None = None
        self._ptr_size: int | None = None
        self._parse_header(data)
        self._index_types()
        self._index_names(_fast_names)

    @property
    def digest(self) -> str:
        """sha256 of the raw BTF (and its base's): what programs built from it depend on."""
        if self._digest is None:
            h = hashlib.sha256(self._raw)
            if self.base is not None:
                h.update(self.base.digest.encode())
            self._digest = h.hexdigest()
        return self._digest

    def _parse_header(self, data: bytes) -> None:
        if len(data) < 24:
            raise BTFError(f"header: {self.source} is {len(data)} bytes, shorter than a BTF "
                           "header (24)")
        magic = int.from_bytes(data[:2], "little")
        if magic == BTF_MAGIC:
            order = "<"
        elif magic == 0x9FEB:
            order = ">"
        else:
            raise BTFError(f"header: bad magic {data[0]:02x} {data[1]:02x} (want 9f eb or "
                           f"eb 9f): {self.source} is not BTF")
        self.byte_order = "little" if order == "<" else "big"
        _, version, flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
            order + "HBBIIIII", data)
        if version != BTF_VERSION:
            raise BTFError(f"header: unsupported version {version} (want {BTF_VERSION})")
        if flags:
            raise BTFError(f"header: unsupported flags 0x{flags:x}")
        if hdr_len < 24 or hdr_len > len(data):
            raise BTFError(f"header: hdr_len {hdr_len} outside 24..{len(data)}")
        body = len(data) - hdr_len
        if type_off + type_len > body:
            raise BTFError(f"header: type section {type_off}+{type_len} runs past the end of "
                           f"the data ({body} bytes after the header)")
        if str_off + str_len > body:
            raise BTFError(f"header: string section {str_off}+{str_len} runs past the end of "
                           f"the data ({body} bytes after the header)")
        if type_off % 4 or type_len % 4:
            raise BTFError(f"header: type section {type_off}+{type_len} not 4-byte aligned")
        if type_off + type_len > str_off:
            raise BTFError(f"header: type section {type_off}+{type_len} overlaps or follows "
                           f"the string section at {str_off}")
        strs = data[hdr_len + str_off:hdr_len + str_off + str_len]
        if self.base is None:
            if not strs or strs[0] != 0:
                raise BTFError("header: string section must start with an empty string")
        if strs and strs[-1] != 0:
            raise BTFError("header: string section is not NUL-terminated")
        if self.base is not None and self.byte_order != self.base.byte_order:
            raise BTFError("header: split BTF and its base differ in byte order")
        words = array("I")
        if words.itemsize != 4:  # pragma: no cover - every Linux ABI has a 4-byte uint
            words = array("L")
        words.frombytes(data[hdr_len + type_off:hdr_len + type_off + type_len])
        if self.byte_order != sys.byteorder:
            words.byteswap()
        self._words = words
        self._strs = strs
        self._str_end = self.start_str_off + len(strs)
        self._text = strs.decode("ascii") if strs.isascii() else None

    def _index_types(self) -> None:
        # The one pass over the type section: the word index of each record, nothing else.
        words, n = self._words, len(self._words)
        steps = _RecordWords()
        starts: list[int] = []
        add = starts.append
        i = 0
        try:
            while i < n:
                add(i)
                i += steps[words[i + 1]]
        except IndexError:
            raise BTFError(f"type [{self.start_id + len(starts) - 1}]: record header runs "
                           "past the end of the type section") from None
        except _UnknownKind as e:
            raise BTFError(f"type [{self.start_id + len(starts) - 1}]: unknown kind "
                           f"{e.args[0]}") from None
        if i > n:
            tid = self.start_id + len(starts) - 1
            raise BTFError(f"type [{tid}] {self._kind_name_at(starts[-1])}: record runs "
                           "past the end of the type section")
        self._starts = array("I", starts) if starts else array("I")
        self._count = self.start_id + len(starts)

    def _kind_name_at(self, start: int) -> str:
        k = self._words[start + 1] >> 24 & 0x1F
        return Kind(k).name if k < len(Kind) else str(k)

    def _index_names(self, fast: bool) -> None:
        # name → ids of this blob's own types.  _by_name holds the last id with the name;
        # _dups holds every id (ascending) of the few names that several types share.
        words, start_id = self._words, self.start_id
        name_offs = [words[s] for s in self._starts]
        self._by_name: dict[str, int] = {}
        self._dups: dict[str, list[int]] = {}
        if fast and self.base is None and self._text is not None and name_offs:
            if max(name_offs) >= len(self._strs):
                bad = next(k for k, o in enumerate(name_offs) if o >= len(self._strs))
                self._name_at(name_offs[bad], start_id + bad)  # raises, naming the type
            last = dict(zip(name_offs, range(start_id, start_id + len(name_offs))))
            last.pop(0, None)
            text = self._text
            nul = text.index
            by_name = {text[o:nul("\0", o)]: tid for o, tid in last.items()}
            if len(by_name) == len(last) and "" not in by_name:
                dups = self._dups
                for k, o in enumerate(name_offs):
                    if o and last[o] != start_id + k:
                        name = text[o:nul("\0", o)]
                        lst = dups.get(name)
                        if lst is None:
                            dups[name] = [start_id + k]
                        else:
                            lst.append(start_id + k)
                for name, lst in dups.items():
                    lst.append(by_name[name])
                self._by_name = by_name
                return
        # General path: split BTF, non-ASCII strings, or the same name at several offsets.
        by_name, dups = self._by_name, self._dups
        for k, o in enumerate(name_offs):
            if not o:
                continue
            tid = start_id + k
            name = self._name_at(o, tid)
            if not name:
                continue
            prev = by_name.get(name)
            if prev is not None:
                lst = dups.get(name)
                if lst is None:
                    dups[name] = [prev, tid]
                else:
                    lst.append(tid)
            by_name[name] = tid

    # ---------------------------------------------------------------- strings
    def str_at(self, offset: int) -> str:
        """The NUL-terminated string at offset in the string section (base's if below)."""
        if offset < self.start_str_off:
            return self.base.str_at(offset)  # type: ignore[union-attr]
        local = offset - self.start_str_off
        if not 0 <= local < len(self._strs):
            raise BTFError(f"string offset {offset} outside the string section "
                           f"({self.start_str_off}..{self._str_end - 1})")
        if self._text is not None:
            return self._text[local:self._text.index("\0", local)]
        raw = self._strs[local:self._strs.index(b"\0", local)]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BTFError(f"string at offset {offset} is not valid UTF-8") from None

    # ---------------------------------------------------------------- types by id
    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Type]:
        """This blob's own types in id order (not void, not the base's)."""
        for tid in range(self.start_id, self._count):
            yield self.type(tid)

    def __repr__(self) -> str:
        return f"<BTF {self.source}: ids {self.start_id}..{self._count - 1}>"

    def type(self, tid: int) -> Type:
        """The type with id tid; id 0 is a Void (kind UNKN, name "")."""
        t = self._cache.get(tid)
        if t is not None:
            return t
        if isinstance(tid, bool) or not isinstance(tid, int):
            raise TypeError(f"type id must be an int, not {type(tid).__name__}")
        if tid < self.start_id:
            if tid == 0:
                t = _VOID
            elif tid > 0 and self.base is not None:
                return self.base.type(tid)
            else:
                raise BTFError(f"type id {tid} out of range (ids 0..{self._count - 1})")
        elif tid >= self._count:
            raise BTFError(f"type id {tid} out of range (ids 0..{self._count - 1})")
        else:
            t = self._decode(tid)
        self._cache[tid] = t
        return t

    def kind(self, tid: int) -> Kind:
        """The kind of type tid without decoding it."""
        if 0 < tid < self.start_id and self.base is not None:
            return self.base.kind(tid)
        if tid == 0:
            return Kind.UNKN
        if not self.start_id <= tid < self._count:
            raise BTFError(f"type id {tid} out of range (ids 0..{self._count - 1})")
        return _KINDS[self._words[self._starts[tid - self.start_id] + 1] >> 24 & 0x1F]

    def _ref(self, tid: int, ref: int, what: str) -> int:
        if ref >= self._count:
            raise BTFError(f"type [{tid}]: {what} refers to type id {ref}, past the last id "
                           f"{self._count - 1}")
        return ref

    def _name_at(self, offset: int, tid: int, what: str = "name") -> str:
        text = self._text
        if text is not None and self.start_str_off <= offset < self._str_end:
            offset -= self.start_str_off
            return text[offset:text.index("\0", offset)]
        try:
            return self.str_at(offset)
        except BTFError as e:
            raise BTFError(f"type [{tid}]: {what}: {e}") from None

    def _decode(self, tid: int) -> Type:
        w = self._words
        s = self._starts[tid - self.start_id]
        name_off, info = w[s], w[s + 1]
        name = self._name_at(name_off, tid) if name_off else ""
        return _DECODERS[info >> 24 & 0x1F](self, tid, s, name, info)

    def _decode_int(self, tid, s, name, info):
        w = self._words
        size, v = w[s + 2], w[s + 3]
        enc, off, bits = v >> 24 & 0x0F, v >> 16 & 0xFF, v & 0xFF
        if size not in (1, 2, 4, 8, 16) or not bits or off + bits > size * 8:
            raise BTFError(f"type [{tid}] INT {name!r}: bad size {size}, offset {off} or "
                           f"bits {bits}")
        return Int(tid, Kind.INT, name, size, enc, bits, off)

    def _decode_ref(self, tid, s, name, info):
        kind = _KINDS[info >> 24 & 0x1F]
        ref = self._words[s + 2]
        if ref >= self._count:
            self._ref(tid, ref, "type")
        return _REF_CLASSES[kind](tid, kind, name, ref)

    def _decode_array(self, tid, s, name, info):
        w, ref = self._words, self._ref
        return Array(tid, Kind.ARRAY, name, ref(tid, w[s + 3], "element type"),
                     ref(tid, w[s + 4], "index type"), w[s + 5])

    def _decode_composite(self, tid, s, name, info):
        w, count, name_at = self._words, self._count, self._name_at
        kflag = info >> 31
        members = []
        for i in range(info & 0xFFFF):
            m = s + 3 + 3 * i
            mname = name_at(w[m], tid, f"member {i}") if w[m] else ""
            mtype, off = w[m + 1], w[m + 2]
            if mtype >= count:
                self._ref(tid, mtype, f"member {i} {mname!r}")
            if kflag:
                members.append(Member(mname, mtype, off & 0xFFFFFF, off >> 24))
            else:
                members.append(Member(mname, mtype, off, 0))
        if info >> 24 & 0x1F == Kind.STRUCT:
            return Struct(tid, Kind.STRUCT, name, w[s + 2], tuple(members))
        return Union(tid, Kind.UNION, name, w[s + 2], tuple(members))

    def _decode_enum(self, tid, s, name, info):
        w, name_at = self._words, self._name_at
        signed = bool(info >> 31)
        values = {}
        for i in range(info & 0xFFFF):
            e = s + 3 + 2 * i
            v = w[e + 1]
            values[name_at(w[e], tid, f"enumerator {i}")] = _s32(v) if signed else v
        return Enum(tid, Kind.ENUM, name, w[s + 2], signed, values)

    def _decode_enum64(self, tid, s, name, info):
        w, name_at = self._words, self._name_at
        signed = bool(info >> 31)
        values = {}
        for i in range(info & 0xFFFF):
            e = s + 3 + 3 * i
            v = w[e + 1] | w[e + 2] << 32
            if signed and v >> 63:
                v -= 1 << 64
            values[name_at(w[e], tid, f"enumerator {i}")] = v
        return Enum64(tid, Kind.ENUM64, name, w[s + 2], signed, values)

    def _decode_fwd(self, tid, s, name, info):
        return Fwd(tid, Kind.FWD, name, bool(info >> 31))

    def _decode_func(self, tid, s, name, info):
        return Func(tid, Kind.FUNC, name, self._ref(tid, self._words[s + 2], "prototype"),
                    info & 0xFFFF)

    def _decode_func_proto(self, tid, s, name, info):
        w, count, name_at = self._words, self._count, self._name_at
        params = []
        for i in range(info & 0xFFFF):
            p = s + 3 + 2 * i
            pname = name_at(w[p], tid, f"parameter {i}") if w[p] else ""
            ptype = w[p + 1]
            if ptype >= count:
                self._ref(tid, ptype, f"parameter {i} {pname!r}")
            params.append(Param(pname, ptype))
        return FuncProto(tid, Kind.FUNC_PROTO, name, self._ref(tid, w[s + 2], "return type"),
                         tuple(params))

    def _decode_var(self, tid, s, name, info):
        w = self._words
        return Var(tid, Kind.VAR, name, self._ref(tid, w[s + 2], "type"), w[s + 3])

    def _decode_datasec(self, tid, s, name, info):
        w, ref = self._words, self._ref
        secinfo = []
        for i in range(info & 0xFFFF):
            v = s + 3 + 3 * i
            secinfo.append(VarSecinfo(ref(tid, w[v], f"variable {i}"), w[v + 1], w[v + 2]))
        return Datasec(tid, Kind.DATASEC, name, w[s + 2], tuple(secinfo))

    def _decode_float(self, tid, s, name, info):
        return Float(tid, Kind.FLOAT, name, self._words[s + 2])

    def _decode_decl_tag(self, tid, s, name, info):
        w = self._words
        return DeclTag(tid, Kind.DECL_TAG, name, self._ref(tid, w[s + 2], "tagged type"),
                       _s32(w[s + 3]))

    # ---------------------------------------------------------------- lookup by name
    def _own_ids(self, name: str) -> list[int]:
        lst = self._dups.get(name)
        if lst is not None:
            return lst
        tid = self._by_name.get(name)
        return [] if tid is None else [tid]

    def _ids(self, name: str) -> list[int]:
        own = self._own_ids(name)
        return self.base._ids(name) + own if self.base is not None else own

    @staticmethod
    def _kinds(kind) -> frozenset[Kind] | None:
        if kind is None:
            return None
        if isinstance(kind, (str, int)):
            kind = (kind,)
        out = set()
        for k in kind:
            if isinstance(k, str):
                try:
                    k = Kind[k.upper()]
                except KeyError:
                    raise ValueError(f"no BTF kind {k!r}") from None
            out.add(Kind(k))
        return frozenset(out)

    def _split_c_name(self, name: str, kind):
        # "struct sock" → ("sock", STRUCT), so C spellings work wherever a name does.
        head, _, rest = name.strip().partition(" ")
        if rest and head in _C_PREFIX:
            return rest.strip(), self._kinds(kind) or frozenset(_C_PREFIX[head])
        return name, self._kinds(kind)

    def find_all(self, name: str, kind=None) -> list[Type]:
        """Every type called name (optionally of the given kind or kinds), by id."""
        name, kinds = self._split_c_name(name, kind)
        if kinds is None:
            return [self.type(i) for i in self._ids(name)]
        return [self.type(i) for i in self._ids(name) if self.kind(i) in kinds]

    def find(self, name: str, kind=None) -> Type:
        """The type called name; "struct x", "union x" and "enum x" are understood.

        When several types share the name, a definition wins over FUNC/VAR/DATASEC, those
        over tags, and a FWD is returned only if there is nothing else; ties go to the
        lowest id.
        """
        if not isinstance(name, str):
            raise TypeError(f"type name must be a str, not {type(name).__name__}")
        bare, kinds = self._split_c_name(name, kind)
        ids = self._ids(bare)
        if kinds is not None:
            ids = [i for i in ids if self.kind(i) in kinds]
        if not ids:
            what = f" of kind {'/'.join(sorted(k.name for k in kinds))}" if kinds else ""
            raise BTFNotFound(f"no type named {bare!r}{what} in {self.source}")
        if len(ids) == 1:
            return self.type(ids[0])
        best = min(ids, key=lambda i: (_FIND_RANK.get(self.kind(i), 0), i))
        return self.type(best)

    def _as_type(self, t: TypeLike) -> Type:
        if isinstance(t, Type):
            return t
        if isinstance(t, str):
            return self.find(t)
        return self.type(t)

    # ---------------------------------------------------------------- layout
    def resolve(self, t: TypeLike) -> Type:
        """Follow typedef/const/volatile/restrict/type_tag to the underlying type."""
        t = first = self._as_type(t)
        for _ in range(MAX_RESOLVE_DEPTH):
            if t.kind not in _MODIFIERS:
                return t
            t = self.type(t.type)  # type: ignore[attr-defined]
        raise BTFError(f"type [{first.id}] {first.kind.name} {first.name!r}: typedef/"
                       f"qualifier chain deeper than {MAX_RESOLVE_DEPTH} (a loop?)")

    @property
    def ptr_size(self) -> int:
        """Pointer size of the BTF's architecture: the size of "long", else 8."""
        if self._ptr_size is None:
            size = 8
            for name in ("long int", "long unsigned int"):
                for t in self.find_all(name, Kind.INT):
                    if t.size in (4, 8):  # type: ignore[attr-defined]
                        size = t.size  # type: ignore[attr-defined]
                        break
                else:
                    continue
                break
            self._ptr_size = size
        return self._ptr_size

    def sizeof(self, t: TypeLike) -> int:
        """Size in bytes, through typedefs/qualifiers/vars and arrays (libbpf's
        btf__resolve_size)."""
        t = first = self._as_type(t)
        nelems = 1
        for _ in range(MAX_RESOLVE_DEPTH):
            k = t.kind
            if k in _SIZED:
                return nelems * t.size  # type: ignore[attr-defined]
            if k == Kind.PTR:
                return nelems * self.ptr_size
            if k == Kind.ARRAY:
                nelems *= t.nelems  # type: ignore[attr-defined]
                t = self.type(t.type)  # type: ignore[attr-defined]
            elif k in _MODIFIERS or k in (Kind.VAR, Kind.DECL_TAG):
                t = self.type(t.type)  # type: ignore[attr-defined]
            else:
                why = {Kind.UNKN: "void", Kind.FWD: "only a forward declaration"}.get(
                    k, f"a {k.name}")
                raise BTFError(f"type [{first.id}] {first.kind.name} {first.name!r}: has no "
                               f"size (type [{t.id}] is {why})")
        raise BTFError(f"type [{first.id}] {first.kind.name} {first.name!r}: type chain "
                       f"deeper than {MAX_RESOLVE_DEPTH} (a loop?)")

    def _composite(self, t: TypeLike) -> _Composite:
        if isinstance(t, str):
            bare, kinds = self._split_c_name(t, None)
            cands = [self.type(i) for i in self._ids(bare)
                     if self.kind(i) in (kinds or (Kind.STRUCT, Kind.UNION, Kind.TYPEDEF))]
            for c in cands:
                r = self.resolve(c)
                if r.kind in _COMPOSITE:
                    return r  # type: ignore[return-value]
            if any(self.kind(i) == Kind.FWD for i in self._ids(bare)):
                raise BTFNotFound(f"{t!r} is only a forward declaration in {self.source}")
            raise BTFNotFound(f"no struct or union named {t!r} in {self.source}")
        r = self.resolve(t)
        if r.kind not in _COMPOSITE:
            raise BTFError(f"type [{r.id}] {r.kind.name} {r.name!r} is not a struct or union")
        return r  # type: ignore[return-value]

    def _find_member(self, comp: _Composite, name: str, seen: set[int] | None = None,
                     depth: int = 0):
        """(bit offset within comp, Member) of name, looking inside anonymous members.

        seen holds the composites already searched, so a shared or looping anonymous
        member is walked once; depth bounds the nesting.
        """
        if seen is None:
            seen = set()
        seen.add(comp.id)
        for m in comp.members:
            if m.name == name:
                return m.bit_offset, m
        for m in comp.members:
            if not m.name:
                inner = self.resolve(m.type)
                if inner.kind in _COMPOSITE and inner.id not in seen:
                    if depth >= MAX_RESOLVE_DEPTH:
                        raise BTFError(f"type [{comp.id}] {comp.kind.name} {comp.name!r}: "
                                       f"anonymous members nested deeper than "
                                       f"{MAX_RESOLVE_DEPTH}")
                    hit = self._find_member(inner, name, seen, depth + 1)  # type: ignore
                    if hit is not None:
                        return m.bit_offset + hit[0], hit[1]
        return None

    def member(self, struct: TypeLike, path: str) -> MemberInfo:
        """Locate a member by dotted path ("__sk_common.skc_dport", "comm", "a[3].b").

        Anonymous struct/union members are searched through at any depth; each step goes
        through typedef/const/volatile to the struct it names.  For a struct without
        kflag, an INT member narrower than its type is reported as a bitfield.
        """
        root = self._composite(struct)
        label = f"{root.kind.name.lower()} {root.name or '(anon)'} [{root.id}]"
        comps = path.split(".") if isinstance(path, str) else []
        if not comps or not all(comps):
            raise BTFError(f"{label}: bad member path {path!r}")
        offset, bitfield, tid = 0, 0, root.id
        walked: list[str] = []
        for comp in comps:
            m = _PATH_COMPONENT.match(comp)
            if m is None:
                raise BTFError(f"{label}: bad member path component {comp!r} in {path!r}")
            if bitfield:
                raise BTFError(f"{label}: {'.'.join(walked)!r} is a bitfield, it has no "
                               f"member {comp!r}")
            cur = self.resolve(tid)
            where = f"{label} member {'.'.join(walked)!r}" if walked else label
            if cur.kind not in _COMPOSITE:
                raise BTFNotFound(f"{where} is a {cur.kind.name} {cur.name!r}, not a struct "
                                  f"or union: no member {m.group(1)!r} (path {path!r})")
            hit = self._find_member(cur, m.group(1))  # type: ignore[arg-type]
            if hit is None:
                inner = f" ({cur.kind.name.lower()} {cur.name or '(anon)'} [{cur.id}])" \
                    if walked else ""
                raise BTFNotFound(f"{where}{inner} has no member {m.group(1)!r} "
                                  f"(path {path!r})")
            bit_off, mem = hit
            offset += bit_off
            tid = mem.type
            bitfield = mem.bitfield_size
            if not bitfield:
                r = self.resolve(tid)
                if r.kind == Kind.INT and (r.offset or r.bits != r.size * 8):  # type: ignore
                    offset += r.offset  # type: ignore[attr-defined]
                    bitfield = r.bits  # type: ignore[attr-defined]
            walked.append(m.group(1))
            for idx in re.findall(r"\[(\d+)\]", m.group(2)):
                arr = self.resolve(tid)
                if arr.kind != Kind.ARRAY or bitfield:
                    raise BTFError(f"{label}: {'.'.join(walked)!r} is a {arr.kind.name}, not "
                                   f"an array (path {path!r})")
                i = int(idx)
                if arr.nelems and i >= arr.nelems:  # type: ignore[attr-defined]
                    raise BTFError(f"{label}: index {i} out of range for "
                                   f"{'.'.join(walked)!r} ({arr.nelems} elements)")  # type: ignore
                offset += i * self.sizeof(arr.type) * 8  # type: ignore[attr-defined]
                tid = arr.type  # type: ignore[attr-defined]
        return MemberInfo(offset, bitfield, tid)

    def offsetof(self, struct: TypeLike, path: str) -> int:
        """Byte offset of a member (see member()); BTFError if not on a byte boundary."""
        info = self.member(struct, path)
        if info.offset_bits % 8:
            root = self._composite(struct)
            raise BTFError(f"{root.kind.name.lower()} {root.name or '(anon)'} [{root.id}]: "
                           f"member {path!r} is a bitfield at bit {info.offset_bits}, not on "
                           "a byte boundary")
        return info.offset_bits // 8

    # ---------------------------------------------------------------- enums
    def _enums(self, enum_name: str) -> list[_EnumBase]:
        bare, kinds = self._split_c_name(enum_name, None)
        found = [self.type(i) for i in self._ids(bare)
                 if self.kind(i) in (Kind.ENUM, Kind.ENUM64, Kind.TYPEDEF)]
        enums = [r for r in map(self.resolve, found) if r.kind in (Kind.ENUM, Kind.ENUM64)]
        if not enums:
            raise BTFNotFound(f"no enum named {bare!r} in {self.source}")
        return enums  # type: ignore[return-value]

    def enum_values(self, enum_name: str) -> dict[str, int]:
        """Enumerators of the enum (or ENUM64) called enum_name, as a new dict."""
        return dict(self._enums(enum_name)[0].values)

    def enum_value(self, enum_name: str | None, member_name: str) -> int:
        """Value of one enumerator.  enum_name None searches every enum, anonymous ones
        included (for constants such as TCP_ESTABLISHED that live in an anonymous enum)."""
        if enum_name is None:
            hits = self._enumerator_index().get(member_name)
            if not hits:
                raise BTFNotFound(f"no enumerator {member_name!r} in any enum of {self.source}")
            values = {v for _, v in hits}
            if len(values) > 1:
                raise BTFError(f"enumerator {member_name!r} has different values in types "
                               f"{', '.join(f'[{i}]' for i, _ in hits)}: name the enum")
            return hits[0][1]
        enums = self._enums(enum_name)
        for e in enums:
            if member_name in e.values:
                return e.values[member_name]
        raise BTFNotFound(f"enum {enum_name} [{enums[0].id}] has no enumerator "
                          f"{member_name!r}")

    def _enumerator_index(self) -> dict[str, list[tuple[int, int]]]:
        if self._enumerators is None:
            index: dict[str, list[tuple[int, int]]] = (
                {k: list(v) for k, v in self.base._enumerator_index().items()}
                if self.base is not None else {})
            w, starts = self._words, self._starts
            for k in range(len(starts)):
                if w[starts[k] + 1] >> 24 & 0x1F in (Kind.ENUM, Kind.ENUM64):
                    e = self.type(self.start_id + k)
                    for name, v in e.values.items():  # type: ignore[attr-defined]
                        index.setdefault(name, []).append((e.id, v))
            self._enumerators = index
        return self._enumerators

    # ---------------------------------------------------------------- iterator targets
    # An iterator target "<t>" is in BTF as FUNC bpf_iter_<t> (what an iter program
    # attaches to: its attach_btf_id) and STRUCT bpf_iter__<t> (the program's context),
    # both from the kernel's DEFINE_BPF_ITER_FUNC.  Both are required: the FUNC alone
    # also matches kfuncs such as bpf_iter_num_new and helpers such as bpf_iter_get_info.
    @staticmethod
    def _target(target: str) -> str:
        return target.strip().replace("-", "_")

    def _first_of_kind(self, name: str, kind: Kind) -> int | None:
        for i in self._ids(name):
            if self.kind(i) == kind:
                return i
        return None

    def prime_targets(self, targets: dict[str, int]) -> None:
        """What iter_targets()/iter_target_id() answer without indexing (from a cache keyed
        by this BTF's digest)."""
        self._targets = dict(targets)

    def target_ids(self) -> dict[str, int]:
        """Every iterator target and its FUNC id (what prime_targets() takes back)."""
        if self._targets is not None:
            return dict(self._targets)
        return {t: self.iter_target_id(t) for t in self.iter_targets()}

    def iter_target_id(self, target: str) -> int:
        """BTF id of FUNC bpf_iter_<target> ("task_file" or "task-file")."""
        t = self._target(target)
        if self._targets is not None and t in self._targets:
            return self._targets[t]
        func = self._first_of_kind(f"bpf_iter_{t}", Kind.FUNC)
        if func is None or self._first_of_kind(f"bpf_iter__{t}", Kind.STRUCT) is None:
            missing = f"FUNC bpf_iter_{t}" if func is None else f"struct bpf_iter__{t}"
            raise BTFNotFound(f"the running kernel has no iterator target {target!r} "
                              f"({self.source} has no {missing})")
        return func

    def iter_ctx(self, target: str) -> Struct:
        """The context struct bpf_iter__<target> of an iterator target."""
        t = self._target(target)
        self.iter_target_id(target)
        return self.type(self._first_of_kind(f"bpf_iter__{t}", Kind.STRUCT))  # type: ignore

    def iter_targets(self) -> list[str]:
        """Every iterator target of this BTF (and its base), sorted."""
        if self._targets is not None:
            return sorted(self._targets)
        names = set(self._by_name)
        b = self.base
        while b is not None:
            names.update(b._by_name)
            b = b.base
        out = []
        for name in names:
            if name.startswith("bpf_iter_") and not name.startswith("bpf_iter__"):
                t = name[len("bpf_iter_"):]
                if (f"bpf_iter__{t}" in names
                        and self._first_of_kind(name, Kind.FUNC) is not None
                        and self._first_of_kind(f"bpf_iter__{t}", Kind.STRUCT) is not None):
                    out.append(t)
        return sorted(out)


_VOID = Void(0, Kind.UNKN, "")
_KINDS = tuple(Kind)
# Kind → decoder; the index pass has already rejected every kind without one.
_DECODERS = {
    Kind.INT: BTF._decode_int, Kind.ARRAY: BTF._decode_array,
    Kind.STRUCT: BTF._decode_composite, Kind.UNION: BTF._decode_composite,
    Kind.ENUM: BTF._decode_enum, Kind.ENUM64: BTF._decode_enum64, Kind.FWD: BTF._decode_fwd,
    Kind.FUNC: BTF._decode_func, Kind.FUNC_PROTO: BTF._decode_func_proto,
    Kind.VAR: BTF._decode_var, Kind.DATASEC: BTF._decode_datasec,
    Kind.FLOAT: BTF._decode_float, Kind.DECL_TAG: BTF._decode_decl_tag,
    **{k: BTF._decode_ref for k in _REF_CLASSES},
}


class _LazyBTF(BTF):
    """BTF.lazy(): the raw bytes and header now, the type and name index on first use of
    anything else (a missing attribute builds it, once, whichever thread asks first). The
    index is built apart and then copied in, so no thread sees half of it."""

    def __init__(self, data: bytes, source: str):  # noqa: the index comes on first use
        self.source = source
        self.base = None
        self._raw = data
        self._digest = None
        self.start_id, self.start_str_off = 1, 0  # what _parse_header() needs (no base)
        self._lazy_lock = threading.Lock()
        self._indexed = False

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        with self._lazy_lock:
            if not self._indexed:
                full = BTF(self._raw, None, self.source)
                self.__dict__.update({k: v for k, v in full.__dict__.items()
                                      if k not in ("_digest", "_targets")})
                self._indexed = True
        return object.__getattribute__(self, name)
