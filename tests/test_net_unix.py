"""net/unix and net/netlink (iterators/net_unix.py, net_netlink.py) against the kernel's own
/proc/net/unix and /proc/net/netlink, byte for byte, and against the clients that read them.

A zoo of sockets is made in this process and in a child process: unix stream / dgram /
seqpacket sockets bound to pathnames (absolute, relative ones of 107 and 108 bytes, odd
bytes), abstract names (with embedded NULs, high bytes, the empty abstract name, autobind),
unnamed ones, listeners with pending (never accepted) connections, accepted and connected
pairs, socketpairs; netlink sockets of several protocols bound with and without multicast
groups (also groups past 32, which /proc does not show), with an explicit port id past 2**31,
with unread data (Rmem), with overrun drops (Drops) and with a dump left running (Dump).

The comparison (assert_same_as_proc) reads /proc, iterfs, /proc. Equality with either read
of /proc is the byte-exact pass. Otherwise the columns that differ between the two /proc
reads themselves (line by line) are masked — and only those, and only in columns that are
allowed to vary (unix RefCount; netlink Rmem, Wmem, Dump, Locks, Drops) — and the masked
texts must then be equal; the test reports which cells it masked.

Also: a fresh network namespace (header alone, then one and two sockets), the unix inode
set against sock_diag (pyroute2), psutil.net_connections("unix") through PROCFS_PATH,
iproute2 ss reading PROC_NET_UNIX / PROC_NET_NETLINK (and proof that it reads them), the
one-printf reference program, and the kernel's loss of lines past one read() (xfail while
the kernel has it; see iterators/net_unix.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import kill
from iterfs.catalog import read_once

pytestmark = pytest.mark.kernel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHILD_ENV = {**os.environ, "PYTHONPATH": ROOT}

# the allowed-to-vary columns (index in the whitespace-split record)
UNIX_VARYING = {1}                 # RefCount
NETLINK_VARYING = {4, 5, 6, 7, 8}  # Rmem, Wmem, Dump, Locks, Drops

NETLINK_USERSOCK, NETLINK_SOCK_DIAG, NETLINK_AUDIT = 2, 4, 9
NETLINK_KOBJECT_UEVENT, NETLINK_GENERIC = 15, 16
SOL_NETLINK, NETLINK_ADD_MEMBERSHIP = 270, 1
RTMGRP_LINK, RTMGRP_IPV4_IFADDR = 0x1, 0x10
RTM_GETLINK, RTM_GETROUTE = 18, 26
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
BIG_PORTID = 4_000_000_000 + os.getpid() % 1000
CLONE_NEWNET = 0x40000000


@pytest.fixture(scope="module")
def specs():
    import iterators.net_netlink as nl
    import iterators.net_unix as ux
    return ux.FILES[0], nl.FILES[0]


# ============================================================================ comparison

def proc(name: str) -> bytes:
    with open(f"/proc/net/{name}", "rb") as f:
        return f.read()


def cells(line: bytes) -> list[bytes]:
    """A record as its fields, each with the padding after it (so widths are compared)."""
    return re.findall(rb"\S+\s*", line) or [line]


def varying_cells(a: bytes, b: bytes) -> set[tuple[int, int]] | None:
    """(line, column) cells where two reads differ; None when lines came or went."""
    la, lb = a.split(b"\n"), b.split(b"\n")
    if len(la) != len(lb):
        return None
    out = set()
    for i, (x, y) in enumerate(zip(la, lb)):
        cx, cy = cells(x), cells(y)
        if len(cx) != len(cy):
            return None
        out |= {(i, c) for c, (u, v) in enumerate(zip(cx, cy)) if u != v}
    return out


def masked(text: bytes, mask: set[tuple[int, int]]) -> list[list[bytes]]:
    return [[b"*" if (i, c) in mask else cell for c, cell in enumerate(cells(line))]
            for i, line in enumerate(text.split(b"\n"))]


def assert_same_as_proc(spec, name: str, allowed: set[int], *, tries: int = 8) -> dict:
    """iterfs's file equals /proc's byte for byte, or after masking the cells that changed
    between two back-to-back /proc reads around it (only in `allowed` columns)."""
    last = None
    for _ in range(tries):
        before = proc(name)
        got = read_once(spec)
        after = proc(name)
        if got in (before, after):
            return {"exact": True, "text": got, "masked": set()}
        mask = varying_cells(before, after)
        last = (before, got, after, mask)
        if mask is None or any(c not in allowed for _, c in mask):
            continue  # sockets came or went, or an unmaskable column moved: read again
        if masked(got, mask) in (masked(before, mask), masked(after, mask)):
            return {"exact": False, "text": got, "masked": mask}
        time.sleep(0.05)
    before, got, after, mask = last
    import difflib
    diff = "".join(difflib.unified_diff(
        before.decode("latin-1").splitlines(True), got.decode("latin-1").splitlines(True),
        f"/proc/net/{name}", "iterfs"))
    pytest.fail(f"{spec.path} differs from /proc/net/{name} (varying cells {mask}):\n{diff}")


def test_masking_masks_exactly_the_cells_proc_changed():
    """(pure) The masking of assert_same_as_proc: only cells that differ between the two
    /proc reads, with their padding; a line that came or went means "read again"."""
    a = b"hdr\nff 0   1        2     \nee 9   3        4     \n"
    b = b"hdr\nff 0   1        2     \nee 9   30       4     \n"
    mask = varying_cells(a, b)
    assert mask == {(2, 2)}
    got = b"hdr\nff 0   1        2     \nee 9   31       4     \n"
    assert masked(got, mask) == masked(a, mask) == masked(b, mask)
    assert masked(got.replace(b"ee 9", b"ee 8"), mask) != masked(a, mask)
    assert varying_cells(a, a + b"x\n") is None


# ============================================================================ the zoo

def nl_socket(proto: int, groups: int = 0, portid: int = 0, kind=socket.SOCK_RAW):
    s = socket.socket(socket.AF_NETLINK, kind, proto)
    s.bind((portid, groups))
    return s


def nl_dump_request(msg_type: int, seq: int = 1) -> bytes:
    body = struct.pack("BxxxiII", socket.AF_UNSPEC, 0, 0, 0)  # struct ifinfomsg
    return struct.pack("=IHHII", 16 + len(body), msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def netlink_zoo(stack: contextlib.ExitStack) -> dict:
    """Netlink sockets of several protocols; returns {name: socket}."""
    out = {}

    def keep(name, s):
        out[name] = stack.enter_context(s)

    keep("route_groups", nl_socket(socket.NETLINK_ROUTE, RTMGRP_LINK | RTMGRP_IPV4_IFADDR))
    keep("route_plain", nl_socket(socket.NETLINK_ROUTE))
    keep("route_bigpid", nl_socket(socket.NETLINK_ROUTE, 0, BIG_PORTID))
    g = nl_socket(NETLINK_GENERIC, kind=socket.SOCK_DGRAM)
    g.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, 33)  # groups[0] bit 32: not printed
    g.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, 2)
    keep("generic", g)
    keep("uevent", nl_socket(NETLINK_KOBJECT_UEVENT, 1, kind=socket.SOCK_DGRAM))
    keep("diag", nl_socket(NETLINK_SOCK_DIAG))
    with contextlib.suppress(OSError):  # audit may be refused (EPERM in a container)
        keep("audit", nl_socket(NETLINK_AUDIT))
    # unread data and overrun drops: a usersock group member with a small receive buffer
    # and a sender flooding the group
    rx = nl_socket(NETLINK_USERSOCK, 1 << 4)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    keep("usersock_rx", rx)
    tx = nl_socket(NETLINK_USERSOCK)
    keep("usersock_tx", tx)
    for _ in range(64):
        with contextlib.suppress(OSError):
            tx.sendto(b"\x14\0\0\0\x10\0\0\0" + bytes(12) + b"x" * 200, (0, 1 << 4))
    # a dump the reader never reads: the kernel keeps cb_running while the buffer is full
    d = nl_socket(socket.NETLINK_ROUTE)
    d.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    d.send(nl_dump_request(RTM_GETROUTE))
    keep("route_dump", d)
    return out


# abstract names: NULs inside (→ '@'), high and control bytes, the maximum length, empty
ABSTRACT_NULS = b"\0iterfs\0with\0\0nuls-%d" % os.getpid()
ABSTRACT_LONG = b"\0" + (b"\x00\x01\x7f\xff %@\t-" + b"%d" % os.getpid() * 3)[:20] * 6
ABSTRACT_LONG = ABSTRACT_LONG[:108]
ABSTRACT_EMPTY = b"\0"


def unix_zoo(stack: contextlib.ExitStack, tmp: str) -> dict:
    """Unix sockets of every kind in this process; returns {name: socket}."""
    out = {}

    def keep(name, s):
        out[name] = stack.enter_context(s)
        return s

    U = socket.AF_UNIX
    # stream listener on a pathname with three pending connections, one of them accepted
    lst = keep("stream_listener", socket.socket(U, socket.SOCK_STREAM))
    lst.bind(os.path.join(tmp, "stream.sock"))
    lst.listen(8)
    for i in range(3):
        c = keep(f"stream_client{i}", socket.socket(U, socket.SOCK_STREAM))
        c.connect(os.path.join(tmp, "stream.sock"))
    keep("stream_accepted", lst.accept()[0])
    # a listener whose only pending connection's client has already gone: the embryo stays
    lone = keep("stream_listener_orphan", socket.socket(U, socket.SOCK_STREAM))
    lone.bind(b"\0iterfs-orphan-%d" % os.getpid())
    lone.listen(1)
    with socket.socket(U, socket.SOCK_STREAM) as gone:
        gone.connect(b"\0iterfs-orphan-%d" % os.getpid())
    # seqpacket listener on an abstract name with two pending connections
    sq = keep("seqpacket_listener", socket.socket(U, socket.SOCK_SEQPACKET))
    sq.bind(b"\0iterfs-seqpacket-%d" % os.getpid())
    sq.listen(4)
    for i in range(2):
        c = keep(f"seqpacket_client{i}", socket.socket(U, socket.SOCK_SEQPACKET))
        c.connect(b"\0iterfs-seqpacket-%d" % os.getpid())
    # datagrams: bound pathname, one connected to it, abstract names with NULs and odd bytes
    dg = keep("dgram_bound", socket.socket(U, socket.SOCK_DGRAM))
    dg.bind(os.path.join(tmp, "dgram \x01\xff%s odd.sock"))
    dc = keep("dgram_connected", socket.socket(U, socket.SOCK_DGRAM))
    dc.connect(os.path.join(tmp, "dgram \x01\xff%s odd.sock"))
    dc.send(b"queued")
    keep("abstract_nuls", socket.socket(U, socket.SOCK_DGRAM)).bind(ABSTRACT_NULS)
    keep("abstract_long", socket.socket(U, socket.SOCK_DGRAM)).bind(ABSTRACT_LONG)
    keep("abstract_empty", socket.socket(U, socket.SOCK_STREAM)).bind(ABSTRACT_EMPTY)
    keep("autobind", socket.socket(U, socket.SOCK_DGRAM)).bind("")
    keep("unnamed", socket.socket(U, socket.SOCK_STREAM))
    for kind, name in ((socket.SOCK_STREAM, "stream"), (socket.SOCK_DGRAM, "dgram"),
                       (socket.SOCK_SEQPACKET, "seqpacket")):
        a, b = socket.socketpair(U, kind)
        keep(f"pair_{name}_a", a)
        keep(f"pair_{name}_b", b)
    return out


CHILD = r"""
import ctypes, os, socket, struct, sys, json
U = socket.AF_UNIX
keep = []
libc = ctypes.CDLL(None, use_errno=True)
# relative pathnames of 107 and 108 bytes: sun_path holds 108 and needs no NUL (Python
# refuses 108, so bind(2) is called directly with addrlen 110)
for n in (107, 108):
    s = socket.socket(U, socket.SOCK_STREAM)
    sa = struct.pack("H108s", U, ("L%d-" % n).encode().ljust(n, b"x"))
    assert libc.bind(s.fileno(), sa, 2 + n) == 0, ctypes.get_errno()
    s.listen(1)
    keep.append(s)
# odd bytes (everything but NUL, '/' and newline) in a pathname
s = socket.socket(U, socket.SOCK_DGRAM)
s.bind(bytes(b for b in range(1, 256) if b not in (0x2f, 0x0a, 0x0d))[:100])
keep.append(s)
# a seqpacket listener with a pending connection from this process, a connected pair across
# processes (the peer is in the parent: sys.argv[1])
sq = socket.socket(U, socket.SOCK_SEQPACKET); sq.bind(b"\0iterfs-child-%d" % os.getpid())
sq.listen(1); c = socket.socket(U, socket.SOCK_SEQPACKET)
c.connect(b"\0iterfs-child-%d" % os.getpid()); keep += [sq, c]
x = socket.socket(U, socket.SOCK_STREAM); x.connect(sys.argv[1]); keep.append(x)
nl = []
for proto, groups in ((socket.NETLINK_ROUTE, 0x5), (16, 0), (15, 1), (4, 0)):
    n = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, proto); n.bind((0, groups))
    nl.append(n)
print(json.dumps([[os.fstat(s.fileno()).st_ino for s in k] for k in (keep, nl)]), flush=True)
sys.stdin.read()
"""


@pytest.fixture(scope="module")
def zoo():
    tmp = tempfile.mkdtemp(prefix="iterfs-unix-")
    procs: list[subprocess.Popen] = []
    try:
        with contextlib.ExitStack() as stack:
            unix = unix_zoo(stack, tmp)
            netlink = netlink_zoo(stack)
            child = subprocess.Popen([sys.executable, "-c", CHILD, os.path.join(tmp, "stream.sock")],
                                     cwd=tmp, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=CHILD_ENV)
            procs.append(child)
            child_unix, child_netlink = json.loads(child.stdout.readline())
            # the child's connection to the stream listener: accept it here
            unix["stream_accepted_child"] = stack.enter_context(unix["stream_listener"].accept()[0])
            yield {"unix": unix, "netlink": netlink, "child": child, "child_unix": child_unix,
                   "child_netlink": child_netlink, "tmp": tmp}
    finally:
        for p in procs:
            kill(p)
        shutil.rmtree(tmp, ignore_errors=True)


def ino(s: socket.socket) -> int:
    return os.fstat(s.fileno()).st_ino


def unix_lines(text: bytes) -> list[bytes]:
    """The records (the zoo has no newline in a name)."""
    return [line for line in text.split(b"\n")[1:] if line]


def unix_records(text: bytes) -> dict[int, bytes]:
    """inode → record line, for the sockets that have an inode (not embryos)."""
    out = {}
    for line in unix_lines(text):
        i = int(line.split()[6])
        if i:
            assert i not in out, f"inode {i} twice"
            out[i] = line
    return out


# ============================================================================ net/unix

def test_unix_byte_for_byte(specs, zoo):
    r = assert_same_as_proc(specs[0], "unix", UNIX_VARYING)
    assert r["text"].startswith(b"Num       RefCount Protocol Flags    Type St Inode Path\n")
    recs = unix_records(r["text"])
    mine = {ino(s) for s in zoo["unix"].values()} | set(zoo["child_unix"])
    assert mine <= set(recs), "zoo sockets missing"
    print(f"unix: exact={r['exact']} masked={sorted(r['masked'])} lines={len(recs)}")


def test_unix_one_printf_variant_byte_for_byte(zoo):
    """build_printf (the whole record as one bpf_seq_printf, the reference the faster
    build() is measured against) prints the same bytes."""
    import iterators.net_unix as ux
    from iterfs.catalog import IterSpec
    r = assert_same_as_proc(IterSpec("net/unix", "unix", ux.build_printf), "unix", UNIX_VARYING)
    assert {ino(s) for s in zoo["unix"].values()} <= set(unix_records(r["text"]))


def test_unix_zoo_fields(specs, zoo):
    """The zoo's lines say what the kernel says they should (the byte-exact comparison
    above is the real check; this one shows that every case is covered)."""
    text = read_once(specs[0])
    recs = unix_records(text)
    u, tmp = zoo["unix"], zoo["tmp"]

    def rec(name):
        return recs[ino(u[name])]

    def fields(name):
        return rec(name).split(b" ")

    lst = rec("stream_listener").split()
    assert lst[3:6] == [b"00010000", b"0001", b"01"] and lst[7] == os.path.join(tmp, "stream.sock").encode()
    assert fields("stream_accepted")[5] == b"03"
    assert rec("stream_accepted").endswith(b" " + os.path.join(tmp, "stream.sock").encode())
    assert rec("seqpacket_listener").split()[3:6] == [b"00010000", b"0005", b"01"]
    assert rec("pair_dgram_a").split()[4:6] == [b"0002", b"03"]
    assert rec("dgram_connected").split()[5] == b"03"
    assert rec("unnamed").split()[5] == b"01" and len(rec("unnamed").split()) == 7
    assert rec("dgram_bound").endswith(b" " + os.path.join(tmp, "dgram \x01\xff%s odd.sock").encode())
    assert rec("abstract_nuls").endswith(b" " + ABSTRACT_NULS.replace(b"\0", b"@"))
    assert rec("abstract_long").endswith(b" " + ABSTRACT_LONG.replace(b"\0", b"@"))
    assert len(ABSTRACT_LONG) == 108
    assert rec("abstract_empty").endswith(b" @")
    assert re.search(rb" @[0-9a-f]{5}$", rec("autobind"))
    # pending connections: embryo sockets without a struct socket, SS_CONNECTING (02),
    # carrying the listener's address
    embryos = [ln for ln in unix_lines(text)
               if ln.split()[5:7] == [b"02", b"0"]
               and ln.endswith(b" " + os.path.join(tmp, "stream.sock").encode())]
    assert len(embryos) == 2  # three connects, one accepted (+ the child's, accepted)
    assert any(ln.split()[1:] == [b"00000002", b"00000000", b"00000000", b"0001", b"02", b"0",
                                  b"@iterfs-orphan-%d" % os.getpid()] for ln in unix_lines(text))
    paths = {ln.split(b" ", 7)[7] for ln in recs.values() if len(ln.split(b" ", 7)) == 8}
    assert b"L107-".ljust(107, b"x") in paths and b"L108-".ljust(108, b"x") in paths


def test_unix_newline_in_abstract_name(specs):
    """A newline in an abstract name is printed raw by the kernel (the record spans two
    lines): still byte for byte."""
    name = b"\0iterfs\nline-%d\0x" % os.getpid()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(name)
        r = assert_same_as_proc(specs[0], "unix", UNIX_VARYING)
        assert b" @iterfs\nline-%d@x\n" % os.getpid() in r["text"]


NETNS_CHILD = r"""
import ctypes, json, socket, sys
assert ctypes.CDLL(None, use_errno=True).unshare(%d) == 0, ctypes.get_errno()
from iterfs.catalog import read_once
import iterators.net_unix as ux, iterators.net_netlink as nl
def both(spec, name):
    return [read_once(spec).decode("latin-1"), open("/proc/net/" + name, "rb").read().decode("latin-1")]
out, keep = [], []
for n in range(3):
    out.append(both(ux.FILES[0], "unix"))
    keep.append(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)); keep[-1].bind(b"\0ns%%d" %% n)
out.append(both(nl.FILES[0], "netlink"))
print(json.dumps(out))
""" % CLONE_NEWNET


def test_fresh_netns_header_only_then_one_then_two():
    """In a new network namespace /proc/net/unix is the header alone (the iterator's final
    call prints it: seq_num is (u64)-1 there), then one and two lines; netlink has the
    namespace's kernel sockets."""
    p = subprocess.run([sys.executable, "-c", NETNS_CHILD], capture_output=True, env=CHILD_ENV,
                       timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    runs = json.loads(p.stdout)
    for got, want in runs:
        assert got == want
    assert runs[0][0] == "Num       RefCount Protocol Flags    Type St Inode Path\n"
    assert [len(r[0].splitlines()) for r in runs[:3]] == [1, 2, 3]
    assert len(runs[3][0].splitlines()) > 1


def test_unix_inodes_equal_sock_diag(specs, zoo):
    """The inode column is the set sock_diag (pyroute2 DiagSocket, UNIX_DIAG) reports:
    every socket with an inode. (Embryos, the server ends of connections not accepted yet,
    have none: /proc prints them with inode 0, net/unix/diag.c sk_diag_dump skips them.)"""
    from pyroute2 import DiagSocket
    with DiagSocket() as ds:
        ds.bind()
        for _ in range(5):
            diag1 = {m["udiag_ino"] for m in ds.get_sock_stats(family=socket.AF_UNIX)}
            got = set(unix_records(read_once(specs[0])))
            diag2 = {m["udiag_ino"] for m in ds.get_sock_stats(family=socket.AF_UNIX)}
            if diag1 == diag2:
                break
    assert diag1 == diag2, "unix sockets came and went during every try"
    assert got == diag1, (sorted(got - diag1), sorted(diag1 - got))
    assert {ino(s) for s in zoo["unix"].values()} <= got


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="iterfs-test-")
    try:
        yield pathlib.Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_psutil_net_connections_unix(specs, zoo, workdir):
    """psutil with PROCFS_PATH at a directory holding iterfs's net/unix and links to the
    real per-pid directories sees the connections it sees on /proc."""
    import psutil
    tmp_path = workdir
    (tmp_path / "net").mkdir()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            os.symlink(f"/proc/{pid}", tmp_path / pid)
    os.symlink("/proc/self", tmp_path / "self")
    saved = psutil.PROCFS_PATH
    try:
        for _ in range(5):
            psutil.PROCFS_PATH = "/proc"
            real1 = set(psutil.net_connections("unix"))
            (tmp_path / "net" / "unix").write_bytes(read_once(specs[0]))
            psutil.PROCFS_PATH = str(tmp_path)
            got = set(psutil.net_connections("unix"))
            psutil.PROCFS_PATH = "/proc"
            real2 = set(psutil.net_connections("unix"))
            if real1 == real2:
                break
    finally:
        psutil.PROCFS_PATH = saved
    assert real1 == real2
    assert got == real1, (got ^ real1)
    assert any(c.laddr == os.path.join(zoo["tmp"], "stream.sock") and c.pid == os.getpid()
               for c in got)


def ss(args: list[str], **env) -> bytes:
    ss_bin = shutil.which("ss")
    if ss_bin is None:
        pytest.skip("iproute2 ss is not installed")
    e = {k: v for k, v in os.environ.items() if not k.startswith("PROC_")}
    return subprocess.run([ss_bin, *args], env={**e, **env}, capture_output=True, check=True,
                          timeout=30).stdout


def test_ss_reads_the_file(specs, workdir):
    """iproute2 ss (6.1, misc/ss.c unix_show / netlink_show) reads PROC_NET_UNIX /
    PROC_NET_NETLINK instead of asking sock_diag when either (or PROC_ROOT) is set: a line
    that exists only in the file shows up in its output."""
    fake = workdir / "unix"
    fake.write_bytes(b"Num       RefCount Protocol Flags    Type St Inode Path\n"
                     b"0000000000000000: 00000002 00000000 00010000 0001 01 987654321 /iterfs/fake\n")
    out = ss(["-xa"], PROC_NET_UNIX=str(fake))
    assert b"/iterfs/fake" in out and b"987654321" in out
    fake_nl = workdir / "netlink"
    fake_nl.write_bytes(b"sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode\n"
                        b"0000000000000000 7   424242     00000000 0        0        0     2        0        55555   \n")
    out = ss(["-A", "netlink", "-a", "-n"], PROC_NET_NETLINK=str(fake_nl))
    assert b"424242" in out


def test_ss_unix_same_as_from_proc(specs, zoo, workdir):
    f = workdir / "unix"
    for _ in range(5):
        want1 = ss(["-xa"], PROC_NET_UNIX="/proc/net/unix")
        f.write_bytes(read_once(specs[0]))
        got = ss(["-xa"], PROC_NET_UNIX=str(f))
        want2 = ss(["-xa"], PROC_NET_UNIX="/proc/net/unix")
        if want1 == want2:
            break
    assert got in (want1, want2)
    assert os.path.join(zoo["tmp"], "stream.sock").encode() in got


def test_ss_netlink_same_as_from_proc(specs, zoo, workdir):
    f = workdir / "netlink"
    for _ in range(5):
        want1 = ss(["-A", "netlink", "-a", "-e"], PROC_NET_NETLINK="/proc/net/netlink")
        f.write_bytes(read_once(specs[1]))
        got = ss(["-A", "netlink", "-a", "-e"], PROC_NET_NETLINK=str(f))
        want2 = ss(["-A", "netlink", "-a", "-e"], PROC_NET_NETLINK="/proc/net/netlink")
        if got in (want1, want2):
            break
    assert got in (want1, want2)
    # ss scans Pid with %d: a port id past 2**31 comes out negative, from either file
    assert b"rtnl:%d" % (BIG_PORTID - 2**32) in got


# ============================================================================ net/netlink

def netlink_records(text: bytes) -> dict[int, list[bytes]]:
    out = {}
    for line in text.split(b"\n")[1:]:
        if line:
            f = line.split()
            out[int(f[9])] = f
    return out


def test_netlink_byte_for_byte(specs, zoo):
    r = assert_same_as_proc(specs[1], "netlink", NETLINK_VARYING)
    assert r["text"].startswith(b"sk               Eth Pid        Groups   Rmem     Wmem     "
                                b"Dump  Locks    Drops    Inode\n")
    recs = netlink_records(r["text"])
    assert {ino(s) for s in zoo["netlink"].values()} | set(zoo["child_netlink"]) <= set(recs)
    print(f"netlink: exact={r['exact']} masked={sorted(r['masked'])} lines={len(recs)}")


def test_netlink_zoo_fields(specs, zoo):
    recs = netlink_records(read_once(specs[1]))
    n = zoo["netlink"]

    def rec(name):
        return recs[ino(n[name])]

    assert rec("route_groups")[1:4] == [b"0", str(os.getpid()).encode(), b"00000011"]
    assert rec("route_bigpid")[2] == str(BIG_PORTID).encode()
    assert rec("generic")[1] == b"16" and rec("generic")[3] == b"00000002"  # bit 32 hidden
    assert rec("uevent")[1] == b"15" and rec("uevent")[3] == b"00000001"
    rx = rec("usersock_rx")
    assert rx[3] == b"00000010" and int(rx[4]) > 0 and int(rx[8]) > 0  # Rmem, Drops
    assert int(rec("route_dump")[4]) > 0 and rec("route_dump")[6] == b"1"  # Rmem, Dump
    if "audit" in n:
        assert rec("audit")[1] == b"9"
    # kernel sockets: port id 0 and their own inodes
    assert any(f[2] == b"0" and f[1] == b"0" for f in recs.values())


MANY_CHILD = r"""
import resource, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
keep = [socket.socketpair() for _ in range(int(sys.argv[1]))]
print("ready", flush=True)
sys.stdin.read()
"""


def test_unix_past_one_read_kernel_loses_bucket_tails(specs):
    """KNOWN KERNEL LIMIT (6.18): past one read() of output (the iterator's 32 KiB seq
    buffer), the unix iterator drops the rest of the hash bucket it was in at each read()
    boundary (bpf_iter_unix_seq_stop keeps st_bucket_done, bpf_iter_unix_batch then skips to
    the next bucket). Checked here: what iterfs prints is /proc's lines, in /proc's order,
    with only whole lines missing; the test xfails with the count while the kernel loses
    lines and passes once it does not."""
    child = subprocess.Popen([sys.executable, "-c", MANY_CHILD, "700"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"ready\n"
        for _ in range(5):
            before = proc("unix")
            got = read_once(specs[0])
            after = proc("unix")
            if before == after:
                break
    finally:
        kill(child)
    assert len(before) > 64 * 1024
    if got == before:
        return
    want = before.split(b"\n")
    it = iter(want)
    lines = got.split(b"\n")
    assert all(line in it for line in lines), "not an in-order subset of /proc's lines"
    pytest.xfail(f"kernel unix iterator lost {len(want) - len(lines)} of {len(want) - 2} "
                 f"lines at read() boundaries ({len(before)} bytes)")
