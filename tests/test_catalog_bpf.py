"""bpf/maps, bpf/progs, bpf/links (iterators/bpf.py) against bpftool's own output.

For every object present in both bpftool runs (taken before and after the iterfs read) and in
the iterfs output, the iterfs line must equal bpftool's first line (bpf/maps: plus
"  key ..B  value ..B  max_entries N", checked against bpftool's second line). The ids the
iterator saw must be those the kernel had (iterfs.syscall.ids) around the read.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import errno
import os
import re
import shutil
import subprocess
import time

import pytest

from btf_fixtures import BTFBuilder
from iterfs import asm, syscall
from iterfs.btf import BTF
from iterfs.catalog import IterSpec, read_once
from iterfs.dsl.program import IterProgram
from iterfs.programs import array_map, link_iterator, read_all
import iterators.bpf as bpfcat
import iterators.tasks as tasks

MAPS, PROGS, LINKS = bpfcat.FILES
LINE = re.compile(r"^(\d+): ")

# include/uapi/linux/bpf.h
BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_HASH = 1, 2, 5
BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_ARENA = 6, 9, 33
BPF_F_NO_PREALLOC, BPF_F_RDONLY_PROG, BPF_F_MMAPABLE = 1 << 0, 1 << 7, 1 << 10
BPF_PROG_TYPE_SOCKET_FILTER, BPF_PROG_TYPE_RAW_TRACEPOINT = 1, 17
BPF_PROG_TYPE_CGROUP_SKB, BPF_PROG_TYPE_TRACING, BPF_PROG_TYPE_SK_LOOKUP = 8, 26, 30
BPF_PROG_TYPE_NETFILTER = 32
BPF_STATS_RUN_TIME = 0
BPF_CGROUP_ITER_SELF_ONLY = 1
RETURN_0 = asm.assemble([asm.mov("r0", 0), asm.exit_insn()])
RETURN_1 = asm.assemble([asm.mov("r0", 1), asm.exit_insn()])
LONG_FUNC = "iterfs_test_program_with_a_long_name"
# a tracepoint that hardly ever fires, so programs on it keep their (zero) run statistics
# even where kernel.bpf_stats_enabled is on (sched_process_exec would fire for bpftool)
QUIET_TP = "sched_kthread_stop"


class Cmd(enum.IntEnum):
    """bpf(2) commands iterfs.syscall does not wrap (enum bpf_cmd)."""
    RAW_TRACEPOINT_OPEN = 17
    BTF_LOAD = 18
    ENABLE_STATS = 32


class BtfLoadAttr(ctypes.Structure):
    _fields_ = [("btf", ctypes.c_uint64), ("btf_log_buf", ctypes.c_uint64),
                ("btf_size", ctypes.c_uint32), ("btf_log_size", ctypes.c_uint32),
                ("btf_log_level", ctypes.c_uint32)]


class RawTpAttr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_uint64), ("prog_fd", ctypes.c_uint32),
                ("_pad", ctypes.c_uint32), ("cookie", ctypes.c_uint64)]


class EnableStatsAttr(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32)]


# ------------------------------------------------------------------ pure tests

def test_enum_names_follow_libbpf():
    """Suffixes in lower case; a *_DEPRECATED alias yields to the real name whichever comes
    first; __MAX sentinels are no type (libbpf.c map_type_name: "cgroup_storage")."""
    b = BTFBuilder()
    b.enum("bpf_map_type", {
        "BPF_MAP_TYPE_UNSPEC": 0, "BPF_MAP_TYPE_HASH": 1,
        "BPF_MAP_TYPE_CGROUP_STORAGE_DEPRECATED": 2, "BPF_MAP_TYPE_CGROUP_STORAGE": 2,
        "BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE": 3, "BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE_DEPRECATED": 3,
        "BPF_MAP_TYPE_ARENA": 5, "__MAX_BPF_MAP_TYPE": 6})
    btf = BTF.from_bytes(b.build())
    assert bpfcat.enum_names(btf, "bpf_map_type", "BPF_MAP_TYPE_") == {
        0: "unspec", 1: "hash", 2: "cgroup_storage", 3: "percpu_cgroup_storage", 5: "arena"}


def test_name_table_layout():
    t = bpfcat.NameTable.of({0: "unspec", 1: "hash", 3: "percpu_cgroup_storage"})
    assert (t.stride, t.count) == (24, 4)
    assert t.blob[:6] == b"unspec" and t.blob[2 * 24:3 * 24] == b"\0" * 24
    assert t.blob[3 * 24:].rstrip(b"\0") == b"percpu_cgroup_storage"
    assert bpfcat.NameTable.of({}).count == 0


def test_printf_rejects_what_the_kernel_rejects():
    """bpf_seq_printf fails with EINVAL at run time on a %s followed by a letter."""
    p = IterProgram("task", btf=_vmlinux_or_skip())
    for fmt in ("%sflags", "x %s1", "%-8sx"):
        with pytest.raises(ValueError, match="refuses"):
            bpfcat.printf(p, fmt, "r1")
    bpfcat.printf(p, "%s%s%% %s.%%sx\n", "r1", "r2", "r3")  # fine: punctuation, %% escapes


def _vmlinux_or_skip() -> BTF:
    try:
        return BTF.vmlinux()
    except Exception as e:  # no kernel BTF here: the builder cannot run
        pytest.skip(f"needs /sys/kernel/btf/vmlinux ({e})")


# ------------------------------------------------------------------ bpftool

def bpftool(kind: str) -> dict[int, list[str]]:
    """`bpftool KIND list`: id → [first line, further lines...]."""
    exe = shutil.which("bpftool") or next(
        (p for p in ("/usr/sbin/bpftool", "/sbin/bpftool") if os.access(p, os.X_OK)), None)
    if exe is None:
        pytest.fail("bpftool is not installed: apt-get install bpftool (scripts/setup installs it)",
                    pytrace=False)
    r = subprocess.run([exe, kind, "list"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"bpftool {kind} list failed: {r.stderr}"
    out: dict[int, list[str]] = {}
    cur = None
    for line in r.stdout.split("\n"):
        m = LINE.match(line)
        if m:
            cur = out.setdefault(int(m.group(1)), [])
            cur.append(line)
        elif line and cur is not None:
            cur.append(line)
    return out


def iterfs_lines(data: bytes) -> dict[int, str]:
    out: dict[int, str] = {}
    text = data.decode()
    assert text == "" or text.endswith("\n"), text[-200:]
    for line in text.split("\n")[:-1]:
        m = LINE.match(line)
        assert m, f"line without an id: {line!r}"
        assert int(m.group(1)) not in out, f"id twice: {line!r}"
        out[int(m.group(1))] = line
    return out


def names(kind: str) -> dict[int, str]:
    btf = BTF.vmlinux()
    return {"map": lambda: bpfcat.enum_names(btf, "bpf_map_type", "BPF_MAP_TYPE_"),
            "prog": lambda: bpfcat.enum_names(btf, "bpf_prog_type", "BPF_PROG_TYPE_"),
            "link": lambda: bpfcat.enum_names(btf, "bpf_link_type", "BPF_LINK_TYPE_")}[kind]()


def name_types(line: str, table: dict[int, str]) -> str:
    """bpftool's `ID: type N  ` for a type its (older) libbpf lacks → the kernel's name."""
    m = re.match(r"^(\d+): type (\d+)  ", line)
    if m and int(m.group(2)) in table:
        return f"{m.group(1)}: {table[int(m.group(2))]}  " + line[m.end():]
    return line


def number_types(line: str, table: dict[int, str]) -> str:
    """The other way round: `ID: NAME  ` → `ID: type N  `."""
    m = re.match(r"^(\d+): (\w+)  ", line)
    inverse = {v: k for k, v in table.items()}
    if m and m.group(2) in inverse:
        return f"{m.group(1)}: type {inverse[m.group(2)]}  " + line[m.end():]
    return line


MAP_EXTRA = re.compile(r"^\t(key \d+B  value \d+B  max_entries \d+)(?:  |$)")


def expected(kind: str, lines: list[str], table: dict[int, str]) -> str:
    first = name_types(lines[0], table)
    if kind != "map":
        return first
    m = MAP_EXTRA.match(lines[1]) if len(lines) > 1 else None
    assert m, f"bpftool's second map line has no key/value/max_entries: {lines!r}"
    return f"{first}  {m.group(1)}"


def compare(kind: str, spec: IterSpec, must: set[int], *, table=None, transform=None):
    """Read spec between two bpftool runs and two id listings; return {id: line} of the
    objects compared. table: the kernel name table (default: all names); transform: what
    to apply to bpftool's expected line (e.g. number_types)."""
    table = names(kind) if table is None else table
    before = set(syscall.ids(kind))
    tool_before = bpftool(kind)
    ours = iterfs_lines(read_once(spec))
    tool_after = bpftool(kind)
    after = set(syscall.ids(kind))

    seen = set(ours)
    assert before & after <= seen, f"{kind} ids the kernel had all along but {spec.path} lacks: " \
                                   f"{sorted(before & after - seen)}"
    newest = max(before, default=0)
    strays = {i for i in seen - (before | after) if i <= newest}
    assert not strays, f"{spec.path} shows {kind} ids absent around the read: {sorted(strays)}"
    assert must <= seen, f"{spec.path} lacks fixture ids {sorted(must - seen)}"
    assert must <= set(tool_before) & set(tool_after), "bpftool lacks fixture ids"

    compared = {}
    for i in sorted(seen & set(tool_before) & set(tool_after)):
        if tool_before[i] != tool_after[i]:
            assert i not in must, f"fixture {kind} {i} changed between bpftool runs"
            continue  # the object changed (e.g. a program ran): nothing stable to compare
        want = expected(kind, tool_before[i], table)
        if transform is not None:
            want = transform(want)
        assert ours[i] == want, f"{kind} {i}:\n iterfs  {ours[i]!r}\n bpftool {want!r}"
        compared[i] = ours[i]
    assert must <= set(compared)
    return compared


# ------------------------------------------------------------------ fixtures

def cgroup2_root() -> str | None:
    with open("/proc/self/mounts") as f:
        for line in f:
            dev, path, fstype = line.split()[:3]
            if fstype == "cgroup2":
                return path
    return None


def wait_for_netns(pid: int) -> int:
    """An fd of the network namespace of pid once it has left ours."""
    mine = os.stat("/proc/self/ns/net").st_ino
    for _ in range(500):
        with contextlib.suppress(FileNotFoundError):
            if os.stat(f"/proc/{pid}/ns/net").st_ino != mine:
                return os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        time.sleep(0.01)
    raise TimeoutError(f"process {pid} did not enter a new network namespace")


def load_btf_prog(stack: contextlib.ExitStack) -> syscall.Fd:
    """A socket filter with BTF func_info whose FUNC name is longer than 15 characters:
    bpftool prints the FUNC name instead of the cut program name."""
    b = BTFBuilder()
    i32 = b.int("int", 4, signed=True)
    proto = b.func_proto(i32, [])
    func = b.func(LONG_FUNC, proto, linkage=1)
    blob = b.build()
    buf = ctypes.create_string_buffer(blob, len(blob))
    log = ctypes.create_string_buffer(1 << 16)
    btf_fd = stack.enter_context(syscall.Fd(syscall.bpf(Cmd.BTF_LOAD, BtfLoadAttr(
        btf=ctypes.addressof(buf), btf_size=len(blob), btf_log_buf=ctypes.addressof(log),
        btf_log_size=len(log), btf_log_level=1))))
    code = ctypes.create_string_buffer(RETURN_0, len(RETURN_0))
    lic = ctypes.create_string_buffer(b"GPL")
    finfo = (ctypes.c_uint32 * 2)(0, func)
    attr = syscall.ProgLoadAttr(prog_type=BPF_PROG_TYPE_SOCKET_FILTER, insn_cnt=2,
                                insns=ctypes.addressof(code), license=ctypes.addressof(lic),
                                prog_name=LONG_FUNC.encode()[:15], prog_btf_fd=btf_fd.fd,
                                func_info_rec_size=8, func_info=ctypes.addressof(finfo),
                                func_info_cnt=1)
    return stack.enter_context(syscall.Fd(syscall.bpf(syscall.Cmd.PROG_LOAD, attr)))


def trivial_iter(target: str, btf: BTF, stack: contextlib.ExitStack):
    return stack.enter_context(IterProgram(target, btf=btf, name=f"t_{target}"[:15])
                               .build().load(btf=btf))


@pytest.fixture
def objects(vmlinux):
    """Maps, programs and links of many kinds; every fd closed afterwards, also on failure."""
    btf = vmlinux
    ids = {"map": set(), "prog": set(), "link": set()}
    with contextlib.ExitStack() as stack:
        def keep(obj):
            return stack.enter_context(obj)

        def mapfd(*a, **kw):
            fd = keep(syscall.map_create(*a, **kw))
            ids["map"].add(syscall.map_info(fd.fd).id)
            return fd

        hash_fd = mapfd(BPF_MAP_TYPE_HASH, 8, 16, 128, name="t_hash")
        mapfd(BPF_MAP_TYPE_HASH, 4, 4, 64, flags=BPF_F_NO_PREALLOC, name="t_noprealloc")
        mapfd(BPF_MAP_TYPE_ARRAY, 4, 100, 7, name="t_array")
        mapfd(BPF_MAP_TYPE_LRU_HASH, 4, 8, 32, name="t_lru")
        mapfd(BPF_MAP_TYPE_PERCPU_HASH, 4, 8, 16, name="t_pcpu_hash")
        mapfd(BPF_MAP_TYPE_PERCPU_ARRAY, 4, 24, 3, name="t_pcpu_array")
        mapfd(BPF_MAP_TYPE_HASH, 2, 2, 2)  # no name
        optional = set()
        with contextlib.suppress(syscall.BPFError):  # arena: newer than bpftool v7.1's libbpf
            mapfd(BPF_MAP_TYPE_ARENA, 0, 0, 1, flags=BPF_F_MMAPABLE, name="t_arena")
            optional.add("arena")
        frozen = keep(array_map([b"read-only"], name="t_frozen", flags=BPF_F_RDONLY_PROG,
                                freeze=True))
        ids["map"].add(syscall.map_info(frozen.fd).id)

        def progfd(fd):
            ids["prog"].add(syscall.prog_info(fd.fd).id)
            return fd

        task_prog = keep(tasks.FILES[0].build(btf).load(btf=btf))
        ids["prog"].add(task_prog.id)
        progfd(keep(syscall.prog_load(prog_type=BPF_PROG_TYPE_SOCKET_FILTER, insns=RETURN_0,
                                      license="GPL")))                       # empty name
        progfd(keep(syscall.prog_load(prog_type=BPF_PROG_TYPE_SOCKET_FILTER, insns=RETURN_0,
                                      license="Dual MIT/GPL", prog_name="t_mit")))  # gpl
        progfd(keep(syscall.prog_load(prog_type=BPF_PROG_TYPE_SOCKET_FILTER, insns=RETURN_0,
                                      license="Proprietary", prog_name="t_proprietary")))
        progfd(load_btf_prog(stack))
        with contextlib.suppress(syscall.BPFError):  # netfilter: newer than bpftool v7.1's libbpf
            progfd(keep(syscall.prog_load(
                prog_type=BPF_PROG_TYPE_NETFILTER, insns=RETURN_1, license="GPL",
                expected_attach_type=btf.enum_value("bpf_attach_type", "BPF_NETFILTER"),
                prog_name="t_netfilter")))
            optional.add("netfilter")
        try:  # some kernels refuse map-element iterators (EPERM by policy, as this VM's)
            elem_prog = trivial_iter("bpf_map_elem", btf, stack)
            ids["prog"].add(elem_prog.id)
        except syscall.BPFError as e:
            if e.errno != errno.EPERM:
                raise
            elem_prog = None

        def linkfd(fd):
            ids["link"].add(syscall.link_info(fd.fd)[0].id)
            return fd

        def linked(link):
            keep(link)
            ids["link"].add(link.id)
            return link

        linked(link_iterator(task_prog))
        linked(link_iterator(task_prog, tid=os.getpid()))
        linked(link_iterator(task_prog, pid=os.getpid()))
        if elem_prog is not None:
            linked(link_iterator(elem_prog, map_fd=hash_fd.fd))
        root = cgroup2_root()
        if root is not None and "cgroup" in btf.iter_targets():
            cg_prog = trivial_iter("cgroup", btf, stack)
            cg = keep(syscall.Fd(os.open(root, os.O_RDONLY)))
            linked(link_iterator(cg_prog, cgroup_fd=cg.fd, order=BPF_CGROUP_ITER_SELF_ONLY))
        # links of other types. bpftool v7.1's first line of these is the header alone.
        # (Tracing links need fentry/fexit/freplace programs, which this VM's kernel policy
        # refuses; they take the same path as the types below.)
        at = btf.enum_values("bpf_attach_type")
        rprog = progfd(keep(syscall.prog_load(prog_type=BPF_PROG_TYPE_RAW_TRACEPOINT,
                                              insns=RETURN_0, license="GPL", prog_name="t_rawtp")))
        tp = ctypes.create_string_buffer(QUIET_TP.encode())
        rlink = keep(syscall.Fd(syscall.bpf(Cmd.RAW_TRACEPOINT_OPEN, RawTpAttr(
            name=ctypes.addressof(tp), prog_fd=rprog.fd))))
        ids["link"].add(syscall.link_info(rlink.fd)[0].id)
        tp_btf = progfd(keep(syscall.prog_load(
            prog_type=BPF_PROG_TYPE_TRACING, insns=RETURN_0, license="GPL",
            expected_attach_type=at["BPF_TRACE_RAW_TP"], prog_name="t_tp_btf",
            attach_btf_id=btf.find(f"btf_trace_{QUIET_TP}").id)))
        linkfd(keep(syscall.link_create(tp_btf.fd, at["BPF_TRACE_RAW_TP"])))
        if root is not None:  # a cgroup link on a cgroup of our own (allows everything)
            cgdir = os.path.join(root, f"iterfs_test_{os.getpid()}")
            os.mkdir(cgdir)
            stack.callback(os.rmdir, cgdir)
            sprog = progfd(keep(syscall.prog_load(
                prog_type=BPF_PROG_TYPE_CGROUP_SKB, insns=RETURN_1, license="GPL",
                expected_attach_type=at["BPF_CGROUP_INET_INGRESS"], prog_name="t_cgroup_skb")))
            cgfd = keep(syscall.Fd(os.open(cgdir, os.O_RDONLY)))
            linkfd(keep(syscall.link_create(sprog.fd, at["BPF_CGROUP_INET_INGRESS"],
                                            target_fd=cgfd.fd)))
        if shutil.which("unshare"):  # a netns link (sk_lookup, SK_PASS) in a netns of our own
            holder = subprocess.Popen(["unshare", "-n", "sleep", "600"])
            stack.callback(holder.wait)
            stack.callback(holder.kill)
            ns = keep(syscall.Fd(wait_for_netns(holder.pid)))
            lprog = progfd(keep(syscall.prog_load(prog_type=BPF_PROG_TYPE_SK_LOOKUP,
                                                  insns=RETURN_1, license="GPL",
                                                  expected_attach_type=at["BPF_SK_LOOKUP"],
                                                  prog_name="t_sk_lookup")))
            linkfd(keep(syscall.link_create(lprog.fd, at["BPF_SK_LOOKUP"], target_fd=ns.fd)))
        yield {"ids": ids, "task_prog": task_prog, "btf": btf, "map_elem": elem_prog is not None,
               "optional": optional}


# ------------------------------------------------------------------ kernel tests

@pytest.mark.kernel
def test_maps_match_bpftool(objects):
    got = compare("map", MAPS, objects["ids"]["map"])
    lines = " | ".join(got[i] for i in sorted(objects["ids"]["map"]))
    for want in ("hash  name t_hash  flags 0x0  key 8B  value 16B  max_entries 128",
                 "array  name t_frozen  flags 0x80  key 4B  value 9B  max_entries 1",
                 "percpu_array  name t_pcpu_array  flags 0x0", "lru_hash  name t_lru",
                 "percpu_hash  name t_pcpu_hash", "flags 0x1  key 4B", ": hash  flags 0x0  key 2B"):
        assert want in lines
    if "arena" in objects["optional"]:  # bpftool v7.1 says "type 33"
        assert ": arena  name t_arena  flags 0x400  key 0B  value 0B  max_entries 1" in lines


@pytest.mark.kernel
def test_progs_match_bpftool(objects):
    got = compare("prog", PROGS, objects["ids"]["prog"])
    lines = [got[i] for i in sorted(objects["ids"]["prog"])]
    assert any(f"name {LONG_FUNC}  tag " in ln for ln in lines)          # BTF full name
    assert any(re.search(r": socket_filter  tag [0-9a-f]{16}  gpl$", ln) for ln in lines)
    assert any(re.search(r"name t_proprietary  tag [0-9a-f]{16}$", ln) for ln in lines)
    assert any(re.search(r"name t_mit  tag [0-9a-f]{16}  gpl$", ln) for ln in lines)
    assert any(": tracing  name tasks  tag " in ln for ln in lines)
    if "netfilter" in objects["optional"]:  # bpftool v7.1 says "type 32"
        assert any(": netfilter  name t_netfilter  tag " in ln for ln in lines)


@pytest.mark.kernel
def test_links_match_bpftool(objects):
    got = compare("link", LINKS, objects["ids"]["link"])
    text = "\n".join(got[i] for i in sorted(objects["ids"]["link"])) + "\n"
    pid = os.getpid()
    assert re.search(r": iter  prog \d+  target_name task  \n", text)
    assert f"target_name task  tid {pid} \n" in text
    assert f"target_name task  pid {pid} \n" in text
    if objects["map_elem"]:
        assert re.search(r"target_name bpf_map_elem  map_id \d+  \n", text)
    assert len(re.findall(r": raw_tracepoint  prog \d+  \n", text)) == 2
    if cgroup2_root() is not None:
        assert re.search(r": cgroup  prog \d+  \n", text)
    if shutil.which("unshare"):
        assert re.search(r": netns  prog \d+  \n", text)
    if cgroup2_root() is not None:
        assert re.search(r"target_name cgroup  cgroup_id \d+  order self_only  \n", text)


@pytest.mark.kernel
def test_run_time_stats_match_bpftool(objects):
    """With BPF_ENABLE_STATS on, a program run gets run_time_ns / run_cnt (summed over the
    CPUs by the iterator program); bpftool prints them on the first line."""
    prog = objects["task_prog"]
    with syscall.Fd(syscall.bpf(Cmd.ENABLE_STATS, EnableStatsAttr(type=BPF_STATS_RUN_TIME))):
        with link_iterator(prog) as link:
            for _ in range(3):
                with link.new_iter() as fd:
                    read_all(fd.fd)
    got = compare("prog", PROGS, {prog.id})
    assert re.search(r"  gpl run_time_ns [1-9]\d* run_cnt [1-9]\d*$", got[prog.id]), got[prog.id]


@pytest.mark.kernel
@pytest.mark.parametrize("kind,spec,build", [("map", MAPS, bpfcat.build_maps),
                                             ("prog", PROGS, bpfcat.build_progs),
                                             ("link", LINKS, bpfcat.build_links)])
def test_types_past_the_table_print_type_n(objects, kind, spec, build):
    """A type value beyond the name table prints as bpftool prints one libbpf lacks."""
    short = {0: "unspec", 1: names(kind)[1]}
    narrow = IterSpec(spec.path, spec.target, lambda btf: build(btf, names=short))
    full = names(kind)
    compare(kind, narrow, objects["ids"][kind],
            transform=lambda line: number_types(line, {k: v for k, v in full.items() if k > 1}))


@pytest.mark.kernel
def test_reads_leave_no_fds(vmlinux):
    from conftest import fd_count
    read_once(PROGS, vmlinux)  # warm up
    n = fd_count()
    for spec in bpfcat.FILES:
        read_once(spec, vmlinux)
    assert fd_count() == n


@pytest.mark.kernel
def test_catalog_entries_are_supported(vmlinux):
    from iterfs.catalog import check, discover
    entries = {e.spec.path: e for e in check(discover(), vmlinux) if e.spec is not None}
    for spec in bpfcat.FILES:
        e = entries[spec.path]
        assert e.ok, (e.error, e.unsupported)
        assert e.spec.mode == 0o400  # like BPF_*_GET_NEXT_ID: CAP_SYS_ADMIN only
