"""bpf(2) through ctypes: one small wrapper per command, fd ownership, errno → BPFError."""

from __future__ import annotations

import ctypes
import enum
import errno
import os
import platform

__all__ = [
    "Cmd", "BPFError", "Fd", "bpf", "missing_caps",
    "prog_load", "map_create", "btf_load", "map_update_elem", "map_lookup_elem", "map_freeze",
    "link_create", "link_update", "iter_create", "obj_pin", "obj_get",
    "obj_get_info_by_fd", "prog_info", "map_info", "link_info",
    "get_next_id", "get_fd_by_id", "ids",
]

_NR_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class Cmd(enum.IntEnum):
    """enum bpf_cmd (include/uapi/linux/bpf.h)."""
    MAP_CREATE = 0
    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    MAP_GET_NEXT_KEY = 4
    PROG_LOAD = 5
    OBJ_PIN = 6
    OBJ_GET = 7
    PROG_GET_NEXT_ID = 11
    MAP_GET_NEXT_ID = 12
    PROG_GET_FD_BY_ID = 13
    MAP_GET_FD_BY_ID = 14
    OBJ_GET_INFO_BY_FD = 15
    BTF_LOAD = 18
    BTF_GET_FD_BY_ID = 19
    MAP_FREEZE = 22
    BTF_GET_NEXT_ID = 23
    LINK_CREATE = 28
    LINK_UPDATE = 29
    LINK_GET_FD_BY_ID = 30
    LINK_GET_NEXT_ID = 31
    ITER_CREATE = 33


# capabilities that gate bpf(2) for tracing programs (include/uapi/linux/capability.h)
CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39
POLICY_HINT = ("refused although this process has CAP_BPF and CAP_PERFMON: a kernel security "
               "policy (LSM, lockdown or a patched kernel) forbids it")


def missing_caps() -> list[str]:
    """Capabilities this process lacks for loading iterator programs ([] when it has them)."""
    try:
        with open("/proc/self/status") as f:
            eff = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    except (OSError, StopIteration, ValueError):
        return ["CAP_BPF", "CAP_PERFMON"]
    if eff & (1 << CAP_SYS_ADMIN):
        return []
    return [n for n, c in (("CAP_BPF", CAP_BPF), ("CAP_PERFMON", CAP_PERFMON)) if not eff & (1 << c)]


class BPFError(OSError):
    """A failed bpf(2) command: `cmd` names it, `errno` says why."""

    def __init__(self, cmd: Cmd, err: int, hint: str = ""):
        self.cmd = cmd
        msg = f"bpf({cmd.name}): {os.strerror(err)}"
        if not hint and err == errno.EPERM:
            lacking = missing_caps()
            hint = (f"needs CAP_BPF and CAP_PERFMON (or root); this process lacks {', '.join(lacking)}"
                    if lacking else POLICY_HINT)
        super().__init__(err, msg + (f" — {hint}" if hint else ""))

    def __str__(self) -> str:
        return self.strerror


def bpf(cmd: Cmd, attr: ctypes.Structure) -> int:
    """Call bpf(cmd, &attr, sizeof(attr)); returns the result or raises BPFError."""
    nr = _NR_BPF.get(platform.machine())
    if nr is None:
        raise OSError(errno.ENOSYS, f"bpf(2): unsupported architecture {platform.machine()}")
    ret = _libc.syscall(nr, ctypes.c_int(cmd), ctypes.byref(attr), ctypes.c_uint(ctypes.sizeof(attr)))
    if ret < 0:
        raise BPFError(cmd, ctypes.get_errno())
    return ret


class Fd:
    """Owner of one kernel file descriptor: closes it once, on close() or leaving a with block."""

    __slots__ = ("_fd", "__weakref__")

    def __init__(self, fd: int):
        self._fd = fd

    @property
    def fd(self) -> int:
        if self._fd < 0:
            raise ValueError("I/O operation on closed fd")
        return self._fd

    def fileno(self) -> int:
        return self.fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def detach(self) -> int:
        fd, self._fd = self.fd, -1
        return fd

    def dup(self) -> "Fd":
        return type(self)(os.dup(self.fd))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except OSError:
            pass

    def __repr__(self) -> str:
        return f"<{type(self).__name__} fd={self._fd}>"


def _ptr(buf) -> int:
    return ctypes.addressof(buf) if buf is not None else 0


def _cbuf(data: bytes):
    return ctypes.create_string_buffer(bytes(data), len(data) or 1)


# --- attrs: one ctypes.Structure per command group (union bpf_attr members) ---

class MapCreateAttr(ctypes.Structure):
    """struct { __u32 map_type, key_size, value_size, max_entries, map_flags, inner_map_fd,
    numa_node; char map_name[16]; __u32 map_ifindex, btf_fd, btf_key_type_id,
    btf_value_type_id, btf_vmlinux_value_type_id; __u64 map_extra; ... }"""
    _fields_ = [("map_type", ctypes.c_uint32), ("key_size", ctypes.c_uint32),
                ("value_size", ctypes.c_uint32), ("max_entries", ctypes.c_uint32),
                ("map_flags", ctypes.c_uint32), ("inner_map_fd", ctypes.c_uint32),
                ("numa_node", ctypes.c_uint32), ("map_name", ctypes.c_char * 16),
                ("map_ifindex", ctypes.c_uint32), ("btf_fd", ctypes.c_uint32),
                ("btf_key_type_id", ctypes.c_uint32), ("btf_value_type_id", ctypes.c_uint32),
                ("btf_vmlinux_value_type_id", ctypes.c_uint32), ("map_extra", ctypes.c_uint64)]


class MapElemAttr(ctypes.Structure):
    """struct { __u32 map_fd; __aligned_u64 key; union { value, next_key }; __u64 flags; }"""
    _fields_ = [("map_fd", ctypes.c_uint32), ("key", ctypes.c_uint64),
                ("value", ctypes.c_uint64), ("flags", ctypes.c_uint64)]


class ProgLoadAttr(ctypes.Structure):
    """struct { __u32 prog_type, insn_cnt; __aligned_u64 insns, license; __u32 log_level,
    log_size; __aligned_u64 log_buf; __u32 kern_version, prog_flags; char prog_name[16];
    __u32 prog_ifindex, expected_attach_type, prog_btf_fd, func_info_rec_size;
    __aligned_u64 func_info; __u32 func_info_cnt, line_info_rec_size; __aligned_u64 line_info;
    __u32 line_info_cnt, attach_btf_id, attach_prog_fd, core_relo_cnt; __aligned_u64 fd_array,
    core_relos; __u32 core_relo_rec_size, log_true_size; }"""
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
                ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
                ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32), ("prog_name", ctypes.c_char * 16),
                ("prog_ifindex", ctypes.c_uint32), ("expected_attach_type", ctypes.c_uint32),
                ("prog_btf_fd", ctypes.c_uint32), ("func_info_rec_size", ctypes.c_uint32),
                ("func_info", ctypes.c_uint64), ("func_info_cnt", ctypes.c_uint32),
                ("line_info_rec_size", ctypes.c_uint32), ("line_info", ctypes.c_uint64),
                ("line_info_cnt", ctypes.c_uint32), ("attach_btf_id", ctypes.c_uint32),
                ("attach_prog_fd", ctypes.c_uint32), ("core_relo_cnt", ctypes.c_uint32),
                ("fd_array", ctypes.c_uint64), ("core_relos", ctypes.c_uint64),
                ("core_relo_rec_size", ctypes.c_uint32), ("log_true_size", ctypes.c_uint32)]


class ObjAttr(ctypes.Structure):
    """struct { __aligned_u64 pathname; __u32 bpf_fd, file_flags; __s32 path_fd; }"""
    _fields_ = [("pathname", ctypes.c_uint64), ("bpf_fd", ctypes.c_uint32),
                ("file_flags", ctypes.c_uint32), ("path_fd", ctypes.c_int32)]


class IdAttr(ctypes.Structure):
    """struct { union { start_id, prog_id, map_id, link_id }; __u32 next_id, open_flags; }"""
    _fields_ = [("id", ctypes.c_uint32), ("next_id", ctypes.c_uint32),
                ("open_flags", ctypes.c_uint32)]


class InfoAttr(ctypes.Structure):
    """struct { __u32 bpf_fd, info_len; __aligned_u64 info; }"""
    _fields_ = [("bpf_fd", ctypes.c_uint32), ("info_len", ctypes.c_uint32),
                ("info", ctypes.c_uint64)]


class LinkCreateAttr(ctypes.Structure):
    """struct { __u32 prog_fd, target_fd, attach_type, flags;
    struct { __aligned_u64 iter_info; __u32 iter_info_len; }; }"""
    _fields_ = [("prog_fd", ctypes.c_uint32), ("target_fd", ctypes.c_uint32),
                ("attach_type", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("iter_info", ctypes.c_uint64), ("iter_info_len", ctypes.c_uint32),
                ("_pad", ctypes.c_uint32 * 7)]


class LinkUpdateAttr(ctypes.Structure):
    """struct { __u32 link_fd, new_prog_fd, flags, old_prog_fd; }"""
    _fields_ = [("link_fd", ctypes.c_uint32), ("new_prog_fd", ctypes.c_uint32),
                ("flags", ctypes.c_uint32), ("old_prog_fd", ctypes.c_uint32)]


class IterCreateAttr(ctypes.Structure):
    """struct { __u32 link_fd, flags; }"""
    _fields_ = [("link_fd", ctypes.c_uint32), ("flags", ctypes.c_uint32)]


class MapFdAttr(ctypes.Structure):
    """struct { __u32 map_fd; }"""
    _fields_ = [("map_fd", ctypes.c_uint32)]


# --- info structs (prefixes of the uapi structs; the kernel fills min(info_len, its size)) ---

class ProgInfo(ctypes.Structure):
    """struct bpf_prog_info (prefix through attach_btf_id)."""
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("tag", ctypes.c_uint8 * 8),
                ("jited_prog_len", ctypes.c_uint32), ("xlated_prog_len", ctypes.c_uint32),
                ("jited_prog_insns", ctypes.c_uint64), ("xlated_prog_insns", ctypes.c_uint64),
                ("load_time", ctypes.c_uint64), ("created_by_uid", ctypes.c_uint32),
                ("nr_map_ids", ctypes.c_uint32), ("map_ids", ctypes.c_uint64),
                ("name", ctypes.c_char * 16), ("ifindex", ctypes.c_uint32),
                ("gpl_compatible", ctypes.c_uint32), ("netns_dev", ctypes.c_uint64),
                ("netns_ino", ctypes.c_uint64), ("nr_jited_ksyms", ctypes.c_uint32),
                ("nr_jited_func_lens", ctypes.c_uint32), ("jited_ksyms", ctypes.c_uint64),
                ("jited_func_lens", ctypes.c_uint64), ("btf_id", ctypes.c_uint32),
                ("func_info_rec_size", ctypes.c_uint32), ("func_info", ctypes.c_uint64),
                ("nr_func_info", ctypes.c_uint32), ("nr_line_info", ctypes.c_uint32),
                ("line_info", ctypes.c_uint64), ("jited_line_info", ctypes.c_uint64),
                ("nr_jited_line_info", ctypes.c_uint32), ("line_info_rec_size", ctypes.c_uint32),
                ("jited_line_info_rec_size", ctypes.c_uint32), ("nr_prog_tags", ctypes.c_uint32),
                ("prog_tags", ctypes.c_uint64), ("run_time_ns", ctypes.c_uint64),
                ("run_cnt", ctypes.c_uint64), ("recursion_misses", ctypes.c_uint64),
                ("verified_insns", ctypes.c_uint32), ("attach_btf_obj_id", ctypes.c_uint32),
                ("attach_btf_id", ctypes.c_uint32)]


class MapInfo(ctypes.Structure):
    """struct bpf_map_info."""
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32),
                ("key_size", ctypes.c_uint32), ("value_size", ctypes.c_uint32),
                ("max_entries", ctypes.c_uint32), ("map_flags", ctypes.c_uint32),
                ("name", ctypes.c_char * 16), ("ifindex", ctypes.c_uint32),
                ("btf_vmlinux_value_type_id", ctypes.c_uint32), ("netns_dev", ctypes.c_uint64),
                ("netns_ino", ctypes.c_uint64), ("btf_id", ctypes.c_uint32),
                ("btf_key_type_id", ctypes.c_uint32), ("btf_value_type_id", ctypes.c_uint32),
                ("btf_vmlinux_id", ctypes.c_uint32), ("map_extra", ctypes.c_uint64)]


class LinkInfo(ctypes.Structure):
    """struct bpf_link_info: type, id, prog_id, then for iter links
    { __aligned_u64 target_name; __u32 target_name_len; union { map_id }; union { cgroup{id, order}, task{tid, pid} } }."""
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("prog_id", ctypes.c_uint32),
                ("_pad", ctypes.c_uint32), ("target_name", ctypes.c_uint64),
                ("target_name_len", ctypes.c_uint32), ("map_id", ctypes.c_uint32),
                ("u0", ctypes.c_uint64), ("u1", ctypes.c_uint32), ("_rest", ctypes.c_uint8 * 36)]


# --- commands ---

def prog_load(*, prog_type: int, insns: bytes, license: str, expected_attach_type: int = 0,
              attach_btf_id: int = 0, prog_name: str = "", log_level: int = 0,
              log_buf=None, fd_array: list[int] | None = None, prog_flags: int = 0) -> Fd:
    """BPF_PROG_LOAD. log_buf: a ctypes char buffer the verifier log is written to."""
    code = _cbuf(insns)
    lic = ctypes.create_string_buffer(license.encode())
    attr = ProgLoadAttr(prog_type=prog_type, insn_cnt=len(insns) // 8, insns=_ptr(code),
                        license=_ptr(lic), expected_attach_type=expected_attach_type,
                        attach_btf_id=attach_btf_id, prog_flags=prog_flags,
                        prog_name=prog_name.encode()[:15])
    if log_buf is not None:
        attr.log_level, attr.log_size, attr.log_buf = log_level or 1, len(log_buf), _ptr(log_buf)
    if fd_array:
        arr = (ctypes.c_int32 * len(fd_array))(*fd_array)
        attr.fd_array = ctypes.addressof(arr)
    return Fd(bpf(Cmd.PROG_LOAD, attr))


def map_create(map_type: int, key_size: int, value_size: int, max_entries: int,
               *, flags: int = 0, name: str = "", btf_fd: int = 0, btf_key_type_id: int = 0,
               btf_value_type_id: int = 0) -> Fd:
    attr = MapCreateAttr(map_type=map_type, key_size=key_size, value_size=value_size,
                         max_entries=max_entries, map_flags=flags, map_name=name.encode()[:15],
                         btf_fd=btf_fd, btf_key_type_id=btf_key_type_id,
                         btf_value_type_id=btf_value_type_id)
    return Fd(bpf(Cmd.MAP_CREATE, attr))


class BtfLoadAttr(ctypes.Structure):
    """struct { __aligned_u64 btf, btf_log_buf; __u32 btf_size, btf_log_size, btf_log_level,
    btf_log_true_size, btf_flags; __s32 btf_token_fd; }"""
    _fields_ = [("btf", ctypes.c_uint64), ("btf_log_buf", ctypes.c_uint64),
                ("btf_size", ctypes.c_uint32), ("btf_log_size", ctypes.c_uint32),
                ("btf_log_level", ctypes.c_uint32), ("btf_log_true_size", ctypes.c_uint32),
                ("btf_flags", ctypes.c_uint32), ("btf_token_fd", ctypes.c_int32)]


def btf_load(blob: bytes) -> Fd:
    """BPF_BTF_LOAD; a rejection carries the kernel's BTF log."""
    data = _cbuf(blob)
    log = ctypes.create_string_buffer(1 << 16)
    attr = BtfLoadAttr(btf=_ptr(data), btf_size=len(blob), btf_log_buf=_ptr(log),
                       btf_log_size=len(log), btf_log_level=1)
    try:
        return Fd(bpf(Cmd.BTF_LOAD, attr))
    except BPFError as e:
        raise BPFError(e.cmd, e.errno, " ".join(log.value.decode(errors="replace").split())) from None


def map_update_elem(map_fd: int, key: bytes, value: bytes, flags: int = 0) -> None:
    k, v = _cbuf(key), _cbuf(value)
    bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=map_fd, key=_ptr(k), value=_ptr(v), flags=flags))


def map_lookup_elem(map_fd: int, key: bytes, value_size: int) -> bytes:
    k, v = _cbuf(key), ctypes.create_string_buffer(value_size)
    bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=map_fd, key=_ptr(k), value=_ptr(v)))
    return v.raw


def map_freeze(map_fd: int) -> None:
    bpf(Cmd.MAP_FREEZE, MapFdAttr(map_fd=map_fd))


def link_create(prog_fd: int, attach_type: int, *, target_fd: int = 0,
                iter_info: bytes = b"", flags: int = 0) -> Fd:
    info = _cbuf(iter_info) if iter_info else None
    attr = LinkCreateAttr(prog_fd=prog_fd, target_fd=target_fd, attach_type=attach_type,
                          flags=flags, iter_info=_ptr(info), iter_info_len=len(iter_info))
    return Fd(bpf(Cmd.LINK_CREATE, attr))


def link_update(link_fd: int, new_prog_fd: int, *, old_prog_fd: int = 0) -> None:
    flags = 1 << 2 if old_prog_fd else 0  # BPF_F_REPLACE
    bpf(Cmd.LINK_UPDATE, LinkUpdateAttr(link_fd=link_fd, new_prog_fd=new_prog_fd,
                                        flags=flags, old_prog_fd=old_prog_fd))


def memfd_of(data: bytes, name: str) -> int:
    """A memfd holding data, at offset 0: an fd any process it is passed to can read."""
    fd = os.memfd_create(f"iterfs:{name}", os.MFD_CLOEXEC)
    try:
        with open(fd, "wb", closefd=False) as f:
            f.write(data)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def iter_create(link_fd: int) -> Fd:
    return Fd(bpf(Cmd.ITER_CREATE, IterCreateAttr(link_fd=link_fd)))


def obj_pin(fd: int, path: str) -> None:
    p = ctypes.create_string_buffer(os.fsencode(path))
    bpf(Cmd.OBJ_PIN, ObjAttr(pathname=_ptr(p), bpf_fd=fd))


def obj_get(path: str, *, flags: int = 0) -> Fd:
    """BPF_OBJ_GET; flags BPF_F_RDONLY (1<<3) / BPF_F_WRONLY (1<<4)."""
    p = ctypes.create_string_buffer(os.fsencode(path))
    return Fd(bpf(Cmd.OBJ_GET, ObjAttr(pathname=_ptr(p), file_flags=flags)))


def obj_get_info_by_fd(fd: int, info: ctypes.Structure) -> ctypes.Structure:
    bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info),
                                         info=ctypes.addressof(info)))
    return info


def prog_info(fd: int) -> ProgInfo:
    return obj_get_info_by_fd(fd, ProgInfo())


def map_info(fd: int) -> MapInfo:
    return obj_get_info_by_fd(fd, MapInfo())


BPF_LINK_TYPE_ITER = 4


def link_info(fd: int) -> tuple[LinkInfo, str]:
    """The link's info and, for iterator links, its target name ("" otherwise).

    The type-specific part of bpf_link_info is a union: the words that hold an iterator
    link's target_name buffer are, for a kprobe_multi or uprobe_multi link, an address
    array the kernel fills with `count` u64s. So the first call passes no buffer at all,
    and only an iterator link is asked again with one."""
    info = obj_get_info_by_fd(fd, LinkInfo())
    if info.type != BPF_LINK_TYPE_ITER:
        return info, ""
    name = ctypes.create_string_buffer(64)
    info = LinkInfo(target_name=ctypes.addressof(name), target_name_len=len(name))
    obj_get_info_by_fd(fd, info)
    return info, name.value.decode(errors="replace")


_NEXT = {"prog": Cmd.PROG_GET_NEXT_ID, "map": Cmd.MAP_GET_NEXT_ID,
         "link": Cmd.LINK_GET_NEXT_ID, "btf": Cmd.BTF_GET_NEXT_ID}
_BY_ID = {"prog": Cmd.PROG_GET_FD_BY_ID, "map": Cmd.MAP_GET_FD_BY_ID,
          "link": Cmd.LINK_GET_FD_BY_ID, "btf": Cmd.BTF_GET_FD_BY_ID}


def get_next_id(kind: str, start_id: int) -> int | None:
    """PROG/MAP/LINK/BTF_GET_NEXT_ID: the next id after start_id, or None at the end."""
    attr = IdAttr(id=start_id)
    try:
        bpf(_NEXT[kind], attr)
    except BPFError as e:
        if e.errno == errno.ENOENT:
            return None
        raise
    return attr.next_id


def ids(kind: str) -> list[int]:
    """Every id of one kind of BPF object ("prog", "map", "link", "btf")."""
    out, cur = [], 0
    while (cur := get_next_id(kind, cur)) is not None:
        out.append(cur)
    return out


def get_fd_by_id(kind: str, obj_id: int, *, open_flags: int = 0) -> Fd:
    return Fd(bpf(_BY_ID[kind], IdAttr(id=obj_id, open_flags=open_flags)))
