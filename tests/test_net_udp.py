"""net/udp, net/udp6 and net/ipv6_route against the running kernel's own /proc files, byte
for byte, plus the clients that parse them (pyroute2 sock_diag, psutil, iproute2 ss).

How the comparisons mask: /proc is read, then iterfs, then /proc again (A, G, B). Where A
and B are equal (the normal case: every socket and route here belongs to the test), G must
equal them byte for byte. Where /proc itself changed between the two reads, exactly the
whitespace-separated columns that differ between A and B are masked (in A and G; a line
with a masked column is compared column by column, since a wider value moves the padding),
and the test records that /proc varied there (the returned mask; the tests assert that it
never touches their own sockets). Lines that come or go between A and B make the triple
useless: it is taken again, up to 6 times; when other processes' sockets come and go in
every try (other test runs on the machine), the lines that are in both A and B are checked
as above and in their order, and G may hold lines of sockets that lived only in between.
The clients (sock_diag, psutil, ss) are bracketed the same way.

Namespaces: `ip netns add iterfs-test-<pid>`; code runs inside it in a forked child that
setns()es before it creates sockets or the iterator (iterator fds take their creator's
netns at BPF_ITER_CREATE).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pathlib
import pickle
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import traceback

import psutil
import pytest

from iterfs.btf import BTF
from iterfs.catalog import load, read_once
from iterfs.programs import read_all
from iterators import net_ipv6_route, net_udp

pytestmark = pytest.mark.kernel

UDP, UDP6 = net_udp.FILES
ROUTE = net_ipv6_route.FILES[0]
PROC = {UDP.path: "/proc/net/udp", UDP6.path: "/proc/net/udp6",
        ROUTE.path: "/proc/net/ipv6_route"}
AF_INET, AF_INET6 = socket.AF_INET, socket.AF_INET6
UDP_CORK = 1  # include/uapi/linux/udp.h
CLONE_NEWNET = 0x40000000
NS = f"iterfs-test-{os.getpid()}"
TOKEN = re.compile(rb"\S+")


# ------------------------------------------------------------------------- comparing

def proc(spec) -> bytes:
    with open(PROC[spec.path], "rb") as f:
        return f.read()


def key_column(spec) -> int:
    """A column that names the line: local address (udp), destination (ipv6_route)."""
    return 0 if spec is ROUTE else 1


def line_key(spec, tokens: list[bytes]):
    """What a line is about: the socket's inode (udp), or destination, source, gateway and
    device (ipv6_route)."""
    return tuple(tokens[:5] + tokens[9:]) if spec is ROUTE else tokens[9]


def masked_equal(x: bytes, y: bytes, masked) -> None:
    """x == y, or when some columns are masked: the same columns apart from those."""
    if not masked:
        assert x == y, (x, y)
        return
    tx, ty = TOKEN.findall(x), TOKEN.findall(y)
    assert len(tx) == len(ty), (x, y)
    assert [t for c, t in enumerate(tx) if c not in masked] == \
        [t for c, t in enumerate(ty) if c not in masked], (x, y, masked)


def assert_bracketed(before: set, got: set, after: set, what) -> None:
    """got == before when nothing changed in between; else (other processes' sockets came
    and went in every try) got holds at least everything that was there before and after
    (it may also hold sockets that lived only in between)."""
    if before == after:
        assert got == before, (what, got ^ before)
    else:
        assert before & after <= got, (what, (before & after) - got)


def compare(spec, *, mine=None, proc_read=None, tries: int = 6) -> dict:
    """A, G, B as described in the module docstring; returns {line_key: [masked columns]}
    (empty when /proc held still, as it does for everything this file creates).

    When other processes' sockets come and go in every try (other tests running at the
    same time), the lines that are in A and in B are checked as above and in their order;
    {"churn": n} says how many came or went."""
    mine = mine or (lambda: read_once(spec))
    proc_read = proc_read or (lambda: proc(spec))
    k = key_column(spec)
    for _ in range(tries):
        a, g, b = proc_read(), mine(), proc_read()
        if a == b:
            assert g == a, diff(a, g)
            return {}
        al, bl = a.splitlines(keepends=True), b.splitlines(keepends=True)
        ta, tb = [TOKEN.findall(x) for x in al], [TOKEN.findall(x) for x in bl]
        if len(al) != len(bl) or any(len(x) != len(y) or (len(x) > k and x[k] != y[k])
                                     for x, y in zip(ta, tb)):
            continue  # lines came or went: no column to mask, take the triple again
        masked = {i: [c for c, (u, v) in enumerate(zip(x, y)) if u != v]
                  for i, (x, y) in enumerate(zip(ta, tb)) if x != y}
        gl = g.splitlines(keepends=True)
        assert len(gl) == len(al), diff(a, g)
        for i, (x, y) in enumerate(zip(al, gl)):
            masked_equal(x, y, masked.get(i))
        return {line_key(spec, ta[i]): cols for i, cols in masked.items()}
    return {"churn": churn(spec, a, g, b)}


def churn(spec, a: bytes, g: bytes, b: bytes) -> int:
    head = 0 if spec is ROUTE else 1
    al, gl, bl = (x.splitlines(keepends=True) for x in (a, g, b))
    assert gl[:head] == al[:head] == bl[:head]
    A, G, B = ({line_key(spec, TOKEN.findall(x)): x for x in t[head:]} for t in (al, gl, bl))
    assert len(G) == len(gl) - head, "a line printed twice"
    common = [key for key in A if key in B]
    for key in common:
        assert key in G, (A[key], "missing")
        ta, tb = TOKEN.findall(A[key]), TOKEN.findall(B[key])
        masked_equal(A[key], G[key], [c for c, (u, v) in enumerate(zip(ta, tb)) if u != v])
    assert [key for key in G if key in B and key in A] == common, "order"
    return len(set(A) ^ set(B))  # G's other lines: sockets that lived between A and B


def diff(a: bytes, g: bytes) -> str:
    al, gl = a.splitlines(), g.splitlines()
    bad = [(i, x, y) for i, (x, y) in enumerate(zip(al, gl)) if x != y][:4]
    return f"/proc {len(al)} lines, iterfs {len(gl)} lines; first differences: {bad}"


def lines(data: bytes) -> list[list[str]]:
    return [ln.split() for ln in data.decode().splitlines()[1:] if ln.strip()]


# ------------------------------------------------------------------------- sockets

def udp(family, bind=None, *, reuseport=False, v6only=None, connect=None) -> socket.socket:
    s = socket.socket(family, socket.SOCK_DGRAM)
    if reuseport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
    if bind is not None:
        s.bind(bind)
    if connect is not None:
        s.connect(connect)
    return s


def every_kind(stack: contextlib.ExitStack) -> list[socket.socket]:
    """UDP sockets of every kind /proc shows, in the calling process."""
    out: list[socket.socket] = []

    def keep(s):
        out.append(stack.enter_context(s))
        return s

    lo4 = keep(udp(AF_INET, ("127.0.0.1", 0)))                           # bound
    keep(udp(AF_INET, ("0.0.0.0", 0)))                                   # wildcard
    keep(udp(AF_INET, ("127.0.0.1", 0), connect=lo4.getsockname()))      # connected
    keep(udp(AF_INET, connect=lo4.getsockname()))                        # autobound by connect
    keep(udp(AF_INET)).sendto(b"x", lo4.getsockname())                   # autobound by sendto
    keep(udp(AF_INET))                                                   # unbound: not shown
    port = keep(udp(AF_INET, ("127.0.0.1", 0), reuseport=True)).getsockname()[1]
    for _ in range(3):                                                   # one port, 4 sockets
        keep(udp(AF_INET, ("127.0.0.1", port), reuseport=True))
    q = keep(udp(AF_INET, ("127.0.0.1", 0)))                             # rx_queue
    small = keep(udp(AF_INET, ("127.0.0.1", 0)))                         # drops
    small.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    cork = keep(udp(AF_INET, ("127.0.0.1", 0)))                          # tx_queue
    cork.setsockopt(socket.IPPROTO_UDP, UDP_CORK, 1)
    cork.sendto(b"c" * 300, lo4.getsockname())

    lo6 = keep(udp(AF_INET6, ("::1", 0)))
    keep(udp(AF_INET6, ("::", 0), v6only=False))                         # dual stack wildcard
    keep(udp(AF_INET6, ("::", 0), v6only=True))
    mapped = keep(udp(AF_INET6, ("::ffff:127.0.0.1", 0)))                # IPv4-mapped
    keep(udp(AF_INET6, ("::1", 0), connect=lo6.getsockname()[:2]))
    keep(udp(AF_INET6, connect=("::ffff:127.0.0.1", lo4.getsockname()[1])))  # mapped peer
    keep(udp(AF_INET6)).sendto(b"x", lo6.getsockname())
    port6 = keep(udp(AF_INET6, ("::1", 0), reuseport=True)).getsockname()[1]
    for _ in range(3):
        keep(udp(AF_INET6, ("::1", port6), reuseport=True))
    q6 = keep(udp(AF_INET6, ("::1", 0)))
    cork6 = keep(udp(AF_INET6, ("::1", 0)))
    cork6.setsockopt(socket.IPPROTO_UDP, UDP_CORK, 1)
    cork6.sendto(b"c" * 200, lo6.getsockname())

    with udp(AF_INET) as tx4, udp(AF_INET6) as tx6:
        for i in range(5):
            tx4.sendto(b"q" * (100 + i), q.getsockname())
            tx6.sendto(b"q" * (100 + i), q6.getsockname()[:2])
            tx6.sendto(b"m" * 10, mapped.getsockname()[:2])
        for _ in range(64):
            tx4.sendto(b"d" * 1000, small.getsockname())
    return out


class Children:
    """Forked processes that create UDP sockets (every_kind) and wait until stopped. One
    drops to uid/gid 65534 first, so the uid column is not all 0."""

    def __init__(self, n: int = 2):
        self.pids: list[int] = []
        self.gos: list[int] = []
        for i in range(n):
            ready_r, ready_w = os.pipe()
            go_r, go_w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: never returns into pytest
                code = 1
                try:
                    # only its own sockets: none inherited (psutil maps each inode to
                    # one process) and no other child's pipe
                    keep = {0, 1, 2, ready_w, go_r}
                    for fd in map(int, os.listdir("/proc/self/fd")):
                        if fd not in keep:
                            with contextlib.suppress(OSError):
                                os.close(fd)
                    if i == 1:
                        os.setgid(65534)
                        os.setuid(65534)
                    with contextlib.ExitStack() as stack:
                        every_kind(stack)
                        os.write(ready_w, b"r")
                        os.read(go_r, 1)
                    code = 0
                finally:
                    os._exit(code)
            os.close(ready_w)
            os.close(go_r)
            self.pids.append(pid)
            self.gos.append(go_w)
            ok = select.select([ready_r], [], [], 10)[0] and os.read(ready_r, 1) == b"r"
            os.close(ready_r)
            if not ok:
                self.close()
                raise RuntimeError(f"child {pid} did not create its sockets")

    def close(self) -> None:
        for fd in self.gos:
            with contextlib.suppress(OSError):
                os.close(fd)  # EOF: the child closes its sockets and exits
        for pid in self.pids:
            for _ in range(100):
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
                time.sleep(0.02)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        self.pids, self.gos = [], []


@pytest.fixture
def tmpdir():
    """A temporary directory (tempfile's: pytest's tmp_path also sweeps other tests' old
    directories, some of them still mounted)."""
    with tempfile.TemporaryDirectory(prefix="iterfs-udp-") as d:
        yield pathlib.Path(d)


@pytest.fixture(scope="module")
def sockets():
    """Sockets of every kind in this process and in two child processes."""
    with contextlib.ExitStack() as stack:
        mine = every_kind(stack)
        kids = Children(2)
        stack.callback(kids.close)
        yield mine


def inode(s: socket.socket) -> int:
    return os.fstat(s.fileno()).st_ino


# ------------------------------------------------------------------------- netns

def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


def in_netns(name: str | None, fn):
    """fn() in a forked child that joined netns `name` (None: a new, empty one); its result
    (pickled), or its exception re-raised here as an AssertionError with its traceback."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                if name is None:
                    if libc.unshare(CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
                else:
                    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
                    if libc.setns(fd, CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), f"setns {name}")
                    os.close(fd)
                data = pickle.dumps(("ok", fn()))
            except BaseException:
                data = pickle.dumps(("error", traceback.format_exc()))
            with os.fdopen(w, "wb") as f:
                f.write(data)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    if not data:
        raise AssertionError(f"the child in netns {name} died without an answer")
    status, value = pickle.loads(data)
    if status != "ok":
        raise AssertionError(f"in netns {name}:\n{value}")
    return value


ROUTES = [  # (ip -n NS ...) : several prefixes, default, reject routes, gateways, nexthops
    ("-6", "route", "add", "2001:db8:2::/64", "via", "2001:db8:1::2", "dev", "d0"),
    ("-6", "route", "add", "2001:db8:3::/48", "dev", "d0", "metric", "300"),
    ("-6", "route", "add", "2001:db8:4:5::/80", "dev", "d0"),
    ("-6", "route", "add", "default", "via", "2001:db8:1::fe", "dev", "d0"),
    ("-6", "route", "add", "blackhole", "2001:db8:dead::/48"),
    ("-6", "route", "add", "unreachable", "2001:db8:beef::/48"),
    ("-6", "route", "add", "prohibit", "2001:db8:f00::/48"),
    ("-6", "route", "add", "2001:db8:41::/64", "via", "2001:db8:40::2", "dev", "v0"),
    ("-6", "route", "add", "2001:db8:30::/64", "from", "2001:db8:1::/64",
     "via", "2001:db8:1::4", "dev", "d0"),                                   # fib6_src
    ("-6", "route", "add", "2001:db8:50::/64", "nexthop", "via", "2001:db8:1::5", "dev", "d0",
     "nexthop", "via", "2001:db8:40::5", "dev", "v0"),                       # multipath
    ("-6", "route", "add", "2001:db8:60::/64", "dev", "d0", "table", "100"),
    ("nexthop", "add", "id", "10", "via", "2001:db8:1::3", "dev", "d0"),
    ("-6", "route", "add", "2001:db8:10::/64", "nhid", "10"),                # nexthop object
    ("nexthop", "add", "id", "11", "via", "2001:db8:40::3", "dev", "v0"),
    ("nexthop", "add", "id", "20", "group", "10/11"),
    ("-6", "route", "add", "2001:db8:20::/64", "nhid", "20"),                # nexthop group
    ("-6", "nexthop", "add", "id", "30", "blackhole"),
    ("-6", "route", "add", "2001:db8:31::/64", "nhid", "30"),                # blackhole nh
]


@pytest.fixture(scope="module")
def netns():
    """A network namespace of our own: lo up, two veth pairs d0/d1 and v0/v1 (this kernel
    has no dummy driver) with addresses, and the ROUTES. Deleted at the end, also on
    failure."""
    if not shutil.which("ip"):
        pytest.fail("iproute2 `ip` is needed for the namespace tests")
    ip("netns", "add", NS)
    try:
        for cmd in (("link", "set", "lo", "up"),
                    ("link", "add", "d0", "type", "veth", "peer", "name", "d1"),
                    ("link", "set", "d0", "up"), ("link", "set", "d1", "up"),
                    ("link", "add", "v0", "type", "veth", "peer", "name", "v1"),
                    ("link", "set", "v0", "up"), ("link", "set", "v1", "up"),
                    ("-6", "addr", "add", "2001:db8:1::1/64", "dev", "d0", "nodad"),
                    ("-6", "addr", "add", "2001:db8:40::1/64", "dev", "v0", "nodad"),
                    *ROUTES):
            ip("-n", NS, *cmd)
        yield NS
    finally:
        subprocess.run(["ip", "netns", "del", NS], capture_output=True, timeout=20)


# ------------------------------------------------------------------------- udp

def test_udp_every_kind_byte_for_byte(sockets):
    ours = {str(inode(s)).encode() for s in sockets}
    for spec in (UDP, UDP6):
        masked = compare(spec)
        assert not ours & set(masked), f"/proc itself varied in {masked} ({spec.path})"
    # the sockets are really there, of every kind
    v4 = lines(proc(UDP))
    assert {"07", "01"} <= {r[3] for r in v4}                           # unconnected, connected
    assert any(r[4].split(":")[0] != "00000000" for r in v4)             # tx_queue (corked)
    assert any(r[4].split(":")[1] != "00000000" for r in v4)             # rx_queue
    assert any(r[12] != "0" for r in v4)                                 # drops
    assert "65534" in {r[7] for r in v4}                                 # the setuid child
    assert sum(r[1].startswith("00000000:") for r in v4) >= 3            # wildcard
    v6 = lines(proc(UDP6))
    assert any(r[1].startswith("0000000000000000FFFF0000") for r in v6)  # v4-mapped
    assert any(r[2].startswith("0000000000000000FFFF0000") for r in v6)  # mapped peer
    assert any(r[4].split(":")[1] != "00000000" for r in v6)
    for rows in (v4, v6):                                                # SO_REUSEPORT
        assert max(sum(r[1] == x[1] for r in rows) for x in rows) >= 4
    mine = {inode(s) for s in sockets}
    assert mine - {int(r[9]) for r in v4 + v6} == {inode(sockets[5])}   # only the unbound


def test_udp_sl_is_the_port_hash_slot(sockets):
    """`sl` is /proc's slot in the port hash (not the iterator's hash2 bucket): equal ports
    share it, and the lines come in slot order."""
    for spec in (UDP, UDP6):
        rows = lines(read_once(spec))
        sls = [int(r[0].rstrip(":")) for r in rows]
        assert sls == sorted(sls)
        by_port: dict[str, set[int]] = {}
        for r, sl in zip(rows, sls):
            by_port.setdefault(r[1].split(":")[1], set()).add(sl)
        assert all(len(v) == 1 for v in by_port.values()), by_port


def test_udp_many_sockets_and_long_chains():
    """More lines than one seq buffer holds (the kernel repeats the call that overflows:
    the program must restart from its previous cursor) and a 300-socket SO_REUSEPORT chain
    in one slot (the cursor follows the chain instead of re-walking it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    try:
        with contextlib.ExitStack() as stack:
            socks = [stack.enter_context(udp(fam, (host, 0)))
                     for _ in range(600) for fam, host in ((AF_INET, "127.0.0.1"),
                                                           (AF_INET6, "::1"))]
            socks.append(stack.enter_context(udp(AF_INET, ("127.0.0.1", 0), reuseport=True)))
            port = socks[-1].getsockname()[1]
            socks += [stack.enter_context(udp(AF_INET, ("127.0.0.1", port), reuseport=True))
                      for _ in range(300)]
            ours = {str(inode(s)).encode() for s in socks}
            for spec in (UDP, UDP6):
                assert not ours & set(compare(spec))
            assert len(proc(UDP)) > 3 * 32768
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_udp_inodes_equal_sock_diag(sockets):
    from pyroute2 import DiagSocket

    def diag() -> dict[int, set[int]]:
        with DiagSocket() as ds:
            ds.bind()
            return {fam: {m["idiag_inode"] for m in
                          ds.get_sock_stats(family=fam, protocol=socket.IPPROTO_UDP)}
                    for fam in (AF_INET, AF_INET6)}

    for _ in range(5):
        before = diag()
        got = {AF_INET: {int(r[9]) for r in lines(read_once(UDP))},
               AF_INET6: {int(r[9]) for r in lines(read_once(UDP6))}}
        after = diag()
        if before == after:
            break
    for fam in (AF_INET, AF_INET6):
        assert_bracketed(before[fam], got[fam], after[fam], fam)
    assert {inode(s) for s in sockets} - got[AF_INET] - got[AF_INET6] == {inode(sockets[5])}


def test_udp_in_own_netns(netns, sockets):
    """Inside a namespace: header only while it has no UDP socket, then its own sockets
    and none of the root namespace's (the udp table is shared by all namespaces)."""
    def inside():
        empty = {s.path: (read_once(s), proc(s)) for s in (UDP, UDP6)}
        with contextlib.ExitStack() as stack:
            every_kind(stack)
            return empty, {s.path: compare(s) for s in (UDP, UDP6)}, \
                {s.path: read_once(s) for s in (UDP, UDP6)}

    empty, masked, outs = in_netns(netns, inside)
    for path, (got, want) in empty.items():
        assert got == want and got.count(b"\n") == 1, (path, got)
    assert masked == {UDP.path: {}, UDP6.path: {}}
    ours = {int(r[9]) for p in outs for r in lines(outs[p])}
    assert ours and not ours & {inode(s) for s in sockets}


def test_udp_sockets_created_during_a_read():
    """Sockets created while a read is under way. The first read() stops after one call
    (the iterator has more sockets ready); then 40 sockets are created. The walk goes on
    in the kernel's current table after the socket it printed first, X: the sockets in
    later slots are printed (by the iterator's remaining calls and, as the iterator has
    fewer calls left than there are lines, by its final call), those in X's slot or before
    are not (a new socket goes to the head of its chain), and each line is the one /proc
    prints for that socket afterwards."""
    def inside():
        with contextlib.ExitStack() as stack:
            for _ in range(8):  # X, the first in slot order, is in a low slot
                stack.enter_context(udp(AF_INET, ("0.0.0.0", 0)))
            loaded = load(UDP, BTF.vmlinux())
            stack.callback(loaded.close)
            fd = stack.enter_context(loaded.link.new_iter())
            head = os.read(fd.fd, 1)          # one call: the header and X's line
            for _ in range(40):
                stack.enter_context(udp(AF_INET, ("0.0.0.0", 0)))
            return head + read_all(fd.fd), proc(UDP)

    got, after = in_netns(None, inside)
    x = lines(got)[0]
    rows, text = lines(after), after.splitlines(keepends=True)
    want = [ln for ln, r in zip(text[1:], rows)
            if r[9] == x[9] or int(r[0].rstrip(":")) > int(x[0].rstrip(":"))]
    assert got == text[0] + b"".join(want)
    assert len(want) > 8  # X is the first of 8 in 16384 slots: most of the 40 land after it


# ------------------------------------------------------------------------- ipv6_route

def test_ipv6_route_in_own_netns(netns):
    def inside():
        return compare(ROUTE), read_once(ROUTE)

    masked, out = in_netns(netns, inside)
    assert not masked
    text = out.decode()
    assert "20010db8000200000000000000000000 40" in text                # a prefix via a gw
    assert re.search(r"^0{32} 00 0{32} 00 20010db80001000000000000000000fe \S+ \S+ 00000000 "
                     r"00000003 +d0$", text, re.M)                       # default route
    assert re.search(r"^20010db8dead0{20} 30 .* 00200200 +lo$", text, re.M)  # blackhole
    assert re.search(r"^20010db8003000000000000000000000 40 20010db8000100000000000000000000 "
                     r"40 ", text, re.M)                                 # a source prefix
    assert re.search(r"^20010db8002000000000000000000000 40 0{32} 00 "
                     r"20010db8000100000000000000000003 ", text, re.M)   # group → first nh
    assert re.search(r"^20010db8004100000000000000000000 40 .* +v0$", text, re.M)  # veth


def test_ipv6_route_root_netns():
    compare(ROUTE)


# ------------------------------------------------------------------------- clients

def test_psutil_reads_iterfs_files(sockets, tmpdir):
    """psutil with PROCFS_PATH at a directory holding iterfs's net/udp and net/udp6 and
    links to the real per-pid directories finds what it finds on /proc."""
    root = tmpdir / "proc"
    (root / "net").mkdir(parents=True)
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            os.symlink(f"/proc/{pid}", root / pid)

    def conns(procfs: str, kind: str) -> set:
        old = psutil.PROCFS_PATH
        psutil.PROCFS_PATH = procfs
        try:
            return set(psutil.net_connections(kind))
        finally:
            psutil.PROCFS_PATH = old

    for kind in ("udp", "udp4", "udp6"):
        for _ in range(5):
            before = conns("/proc", kind)
            (root / "net" / "udp").write_bytes(read_once(UDP))
            (root / "net" / "udp6").write_bytes(read_once(UDP6))
            got, after = conns(str(root), kind), conns("/proc", kind)
            if before == after:
                break
        assert_bracketed(before, got, after, kind)
        assert {c.pid for c in got} >= {os.getpid()}, kind


def test_ss_reads_iterfs_files(sockets, tmpdir):
    """iproute2 ss (misc/ss.c udp_show) reads files instead of sock_diag when PROC_NET_UDP
    or PROC_ROOT is set (net_udp_open/net_udp6_open: $PROC_NET_UDP{,6} or
    $PROC_ROOT/net/udp{,6}); its output from iterfs's files equals its output from /proc."""
    if not shutil.which("ss"):
        pytest.fail("iproute2 `ss` is needed for this test")

    def ss(udp4: str, udp6: str) -> str:
        env = dict(os.environ, PROC_NET_UDP=udp4, PROC_NET_UDP6=udp6)
        return subprocess.run(["ss", "-uan"], env=env, check=True, capture_output=True,
                              text=True, timeout=20).stdout

    # that it reads the files: a made-up socket only a file can show
    fake = tmpdir / "fake_udp"
    fake.write_bytes(net_udp.HEADER4.encode() + b"    0: 07080910:1092 00000000:0000 07 "
                     b"00000000:00000000 00:00000000 00000000     0        0 4242 2 "
                     b"0000000000000000 0\n")
    empty6 = tmpdir / "empty_udp6"
    empty6.write_bytes(net_udp.HEADER6.encode())
    shown = ss(str(fake), str(empty6))
    assert "16.9.8.7:4242" in shown and len(shown.splitlines()) == 2, shown

    mine4, mine6 = tmpdir / "udp", tmpdir / "udp6"
    for _ in range(5):
        a = ss("/proc/net/udp", "/proc/net/udp6")
        mine4.write_bytes(read_once(UDP))
        mine6.write_bytes(read_once(UDP6))
        g, b = ss(str(mine4), str(mine6)), ss("/proc/net/udp", "/proc/net/udp6")
        if a == b:
            break
    if a == b:
        assert g == a
    else:  # other processes' sockets came and went in every try
        head = a.splitlines()[0]
        assert g.splitlines()[0] == head
        assert_bracketed(*(set(x.splitlines()[1:]) for x in (a, g, b)), "ss -uan")
    assert len(g.splitlines()) > 20
