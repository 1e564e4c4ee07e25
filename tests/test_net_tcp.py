"""net/tcp and net/tcp6 (iterators/net_tcp.py) against the kernel's /proc/net/tcp{,6}.

Every TCP state a socket can be seen in is made here on loopback, in this process and in
child processes (two of them with other uids, one above 99999 so that "%5u" overflows):
LISTEN (v4, v6, IPv4-mapped, with a fastopen queue, with an unaccepted connection),
ESTABLISHED (keepalive timer, data waiting in the receive queue, a zero-window sender in
probe0 with a full send queue, ping-pong traffic for the quick-ack column), SYN_SENT,
SYN_RECV (request sockets), FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT, LAST_ACK, CLOSING, TIME_WAIT
(also the TIME_WAIT socket of an orphaned FIN_WAIT2, substate 05). No netem, dummy links or
netfilter tools exist on this VM, so segments are dropped with classic-BPF socket filters
(SO_ATTACH_FILTER) on the receiving socket of our own loopback connections: a listener that
drops everything leaves its client in SYN_SENT; a listener that only takes SYNs keeps
request sockets in SYN_RECV; dropping everything at one end while it or its peer closes gives
FIN_WAIT1 / LAST_ACK; two FIN_WAIT1 ends of which one then hears the other's retransmitted
FIN give CLOSING. TCP_CLOSE is never shown by either side: a socket is unhashed when it
enters it (tcp_set_state), and the iterator skips unhashed sockets.

Comparisons are byte for byte. Between two reads of /proc itself only timers, the queues
of live connections and transient references move; compare() reads /proc, iterfs, /proc and
masks, per line, exactly the columns in which the two /proc reads differ (and reports them),
everything else must be identical, in the same order.

Other programs on this machine open and close sockets at any time, so everything but
test_host_namespace runs in a private network namespace that this process enters (and
leaves) itself: only our sockets are there. Sockets are closed with RST, children are ended
by pid, and leaving the namespace destroys it with whatever TIME_WAIT sockets it still has.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from iterfs import catalog
from iterfs.btf import BTF
from iterfs.programs import read_all

from iterators import net_tcp

AF_INET, AF_INET6 = socket.AF_INET, socket.AF_INET6
SPECS = {s.path: s for s in net_tcp.FILES}
TCP, TCP6 = SPECS["net/tcp"], SPECS["net/tcp6"]

# include/net/tcp_states.h
ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT = 1, 2, 3, 4, 5, 6
CLOSE, CLOSE_WAIT, LAST_ACK, LISTEN, CLOSING = 7, 8, 9, 10, 11
ALL_STATES = {ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE_WAIT,
              LAST_ACK, LISTEN, CLOSING}

OTHER_UIDS = (65534, 123456)


# ============================================================================ reading

@pytest.fixture(scope="module")
def btf():
    return BTF.vmlinux()


def proc(spec) -> bytes:
    with open("/proc/" + spec.path, "rb") as f:
        return f.read()


FIELDS = ["sl", "local_address", "rem_address", "st", "tx_queue:rx_queue", "tr:tm->when",
          "retrnsmt", "uid", "timeout", "inode", "refcount", "pointer", "rto", "ato",
          "quick/pingpong", "cwnd", "ssthresh"]
IDENTITY = {"sl", "local_address", "rem_address", "inode", "pointer"}


def _tokens(line: bytes) -> list[bytes]:
    return re.findall(rb"\s+|\S+", line)


def _field_name(tokens: list[bytes], j: int) -> str:
    """Name of token j: a /proc column, or "padding" for whitespace."""
    if tokens[j].isspace():
        return "padding" if j == len(tokens) - 1 or tokens[j] != b" " else "spaces"
    k = sum(1 for t in tokens[:j] if not t.isspace())
    return FIELDS[k] if k < len(FIELDS) else f"field{k}"


class Varied(Exception):
    """/proc itself changed shape between the two reads (a socket came or went)."""


def masked_diff(p1: bytes, got: bytes, p2: bytes) -> tuple[list[str], collections.Counter]:
    """Compare got with /proc read before (p1) and after (p2) it. Lines equal in p1 and p2
    must be equal in got; in other lines only the tokens that differ between p1 and p2 are
    masked. Returns the problems and a count of masked columns by name."""
    l1, lg, l2 = p1.splitlines(True), got.splitlines(True), p2.splitlines(True)
    if len(l1) != len(l2):
        raise Varied(f"/proc line count changed {len(l1)} -> {len(l2)}")
    problems: list[str] = []
    masked: collections.Counter = collections.Counter()
    if len(lg) != len(l1):
        problems.append(f"{len(lg)} lines from iterfs, {len(l1)} from /proc")
    for i, (a, g, b) in enumerate(zip(l1, lg, l2)):
        if a == b:
            if g != a:
                problems.append(f"line {i}:\n  proc   {a!r}\n  iterfs {g!r}")
            continue
        ta, tg, tb = _tokens(a), _tokens(g), _tokens(b)
        if len(ta) != len(tb):
            raise Varied(f"line {i} changed shape in /proc")
        if len(tg) != len(ta):
            problems.append(f"line {i} has {len(tg)} tokens, /proc {len(ta)}:\n  {a!r}\n  {g!r}")
            continue
        for j, (x, y, z) in enumerate(zip(ta, tg, tb)):
            name = _field_name(ta, j)
            if x != z:
                if name in IDENTITY:
                    raise Varied(f"line {i}: /proc's {name} changed")
                masked[name] += 1
            elif y != x:
                problems.append(f"line {i} {name}: proc {x!r} iterfs {y!r}\n  {a!r}\n  {g!r}")
    return problems, masked


def compare(spec, btf, *, attempts: int = 6) -> tuple[bytes, collections.Counter]:
    """read /proc, iterfs, /proc; masked_diff; retry while /proc itself changes shape."""
    why = ""
    for _ in range(attempts):
        p1 = proc(spec)
        got = catalog.read_once(spec, btf)
        p2 = proc(spec)
        try:
            problems, masked = masked_diff(p1, got, p2)
        except Varied as e:
            why = str(e)
            time.sleep(0.05)
            continue
        assert not problems, f"{spec.path}: " + "\n".join(problems[:20])
        return got, masked
    pytest.fail(f"{spec.path}: /proc never held still for two reads: {why}")


def rows(out: bytes) -> list[list[str]]:
    return [ln.split() for ln in out.decode().splitlines()[1:]]


def states_of(out: bytes) -> collections.Counter:
    return collections.Counter(int(r[3], 16) for r in rows(out))


def inodes_of(out: bytes) -> list[int]:
    return [int(r[9]) for r in rows(out) if int(r[9])]


# ============================================================================ making sockets

SO_ATTACH_FILTER, SO_DETACH_FILTER = 26, 27
TCP_FASTOPEN = 23
# classic BPF (include/uapi/linux/filter.h): (code, jt, jf, k)
RET_DROP = [(0x06, 0, 0, 0)]
# ldb [13] (TCP flags: the filter runs with skb->data at the TCP header); jset SYN
SYN_ONLY = [(0x30, 0, 0, 13), (0x45, 0, 1, 0x02), (0x06, 0, 0, 0xFFFFFFFF), (0x06, 0, 0, 0)]


def attach(sock: socket.socket, prog) -> None:
    """SO_ATTACH_FILTER: the socket's own incoming segments go through prog."""
    insns = b"".join(struct.pack("HBBI", *i) for i in prog)
    buf = ctypes.create_string_buffer(insns, len(insns))
    fprog = struct.pack("HxxxxxxP", len(prog), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def detach(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)


def tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]


def wait_state(sock: socket.socket, state: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while tcp_state(sock) != state:
        if time.monotonic() > deadline:
            raise AssertionError(f"socket stuck in state {tcp_state(sock)}, wanted {state}")
        time.sleep(0.005)


def rst_close(sock: socket.socket) -> None:
    """close() with an RST: nothing lingers in TIME_WAIT or FIN_WAIT."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class Zoo:
    """Sockets in every state; close() tears everything down (RST where it can)."""

    def __init__(self):
        self.socks: list[socket.socket] = []
        self.expect: dict[int, collections.Counter] = {AF_INET: collections.Counter(),
                                                        AF_INET6: collections.Counter()}
        self.mine: set[int] = set()  # inodes of sockets this process holds

    def keep(self, s: socket.socket) -> socket.socket:
        self.socks.append(s)
        self.mine.add(os.fstat(s.fileno()).st_ino)
        return s

    def listener(self, family, host, *, backlog=16, prog=None, opts=()) -> socket.socket:
        s = socket.socket(family, socket.SOCK_STREAM)
        for level, opt, val in opts:
            s.setsockopt(level, opt, val)
        s.bind((host, 0))
        if prog:
            attach(s, prog)
        s.listen(backlog)
        return self.keep(s)

    def pair(self, lst, family, host=None) -> tuple[socket.socket, socket.socket]:
        c = socket.socket(family, socket.SOCK_STREAM)
        c.connect((host or lst.getsockname()[0], lst.getsockname()[1]))
        s, _ = lst.accept()
        return self.keep(c), self.keep(s)

    def forget(self, *socks) -> None:
        for s in socks:
            self.socks.remove(s)
            self.mine.discard(os.fstat(s.fileno()).st_ino)

    def count(self, fam, state, n=1):
        self.expect[fam][state] += n

    def build(self, family: int) -> None:
        host = "::1" if family == AF_INET6 else "127.0.0.1"
        fam = family
        lst = self.listener(family, host, opts=[(socket.IPPROTO_TCP, TCP_FASTOPEN, 5)])
        self.count(fam, LISTEN)
        # ESTABLISHED: keepalive timer; data in a receive queue; ping-pong traffic
        c, s = self.pair(lst, family)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        c.sendall(b"x" * 1000)
        for _ in range(4):
            s.sendall(b"ping")
            c.recv(16)
            c.sendall(b"pong")
        self.count(fam, ESTABLISHED, 2)
        # a zero-window receiver: the sender's queue fills and it probes (timer 4)
        rcv = socket.socket(family, socket.SOCK_STREAM)
        rcv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        rcv.connect(lst.getsockname()[:2])
        snd, _ = lst.accept()
        self.keep(rcv), self.keep(snd)
        snd.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                snd.send(b"z" * 65536)
        self.count(fam, ESTABLISHED, 2)
        # an unaccepted connection: rx_queue of its listener is the accept backlog
        queue = self.listener(family, host)
        self.keep(socket.create_connection(queue.getsockname()[:2]))
        self.count(fam, LISTEN)
        self.count(fam, ESTABLISHED, 2)  # both ends (the server end waits in the queue)
        # SYN_SENT: the listener drops every segment
        deaf = self.listener(family, host, prog=RET_DROP)
        ss = self.keep(socket.socket(family, socket.SOCK_STREAM))
        ss.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            ss.connect(deaf.getsockname()[:2])
        self.count(fam, LISTEN)
        self.count(fam, SYN_SENT)
        # SYN_RECV: the listener takes SYNs only, so the handshake's last ACK never lands
        half = self.listener(family, host, prog=SYN_ONLY)
        for _ in range(2):
            self.keep(socket.create_connection(half.getsockname()[:2]))
        self.count(fam, LISTEN)
        self.count(fam, ESTABLISHED, 2)
        self.count(fam, SYN_RECV, 2)
        # FIN_WAIT1 and CLOSING: both ends close while dropping everything; then one end
        # listens again, hears the other's retransmitted FIN and goes to CLOSING
        a, b = self.pair(lst, family)
        attach(a, RET_DROP)
        attach(b, RET_DROP)
        a.shutdown(socket.SHUT_WR)
        b.shutdown(socket.SHUT_WR)
        wait_state(a, FIN_WAIT1)
        detach(b)
        wait_state(b, CLOSING)
        self.count(fam, FIN_WAIT1)
        self.count(fam, CLOSING)
        # FIN_WAIT2 / CLOSE_WAIT
        c2, d2 = self.pair(lst, family)
        c2.shutdown(socket.SHUT_WR)
        wait_state(c2, FIN_WAIT2)
        self.count(fam, FIN_WAIT2)
        self.count(fam, CLOSE_WAIT)
        # LAST_ACK: the FIN_WAIT2 end stops listening before its peer closes
        e, f = self.pair(lst, family)
        e.shutdown(socket.SHUT_WR)
        wait_state(e, FIN_WAIT2)
        attach(e, RET_DROP)
        f.shutdown(socket.SHUT_WR)
        wait_state(f, LAST_ACK)
        self.count(fam, FIN_WAIT2)
        self.count(fam, LAST_ACK)
        # TIME_WAIT: the active closer
        g, h = self.pair(lst, family)
        self.forget(g, h)
        g.close()
        h.recv(1)
        h.close()
        self.count(fam, TIME_WAIT)
        # an orphaned FIN_WAIT2 becomes a TIME_WAIT socket with substate FIN_WAIT2
        i, j = self.pair(lst, family)
        self.forget(i)
        i.close()
        self.count(fam, FIN_WAIT2)  # (st 05 of a timewait socket)
        self.count(fam, CLOSE_WAIT)
        if family == AF_INET6:
            # IPv4-mapped: a v6 listener on ::ffff:127.0.0.1, a v6 client through it, a v4
            # client of a dual-stack (mapped) listener, a mapped request socket, TIME_WAIT
            mapped = self.listener(AF_INET6, "::ffff:127.0.0.1")
            self.count(AF_INET6, LISTEN)
            self.pair(mapped, AF_INET6)
            self.count(AF_INET6, ESTABLISHED, 2)
            self.pair(mapped, AF_INET, "127.0.0.1")  # the v4 client is in /proc/net/tcp
            self.count(AF_INET6, ESTABLISHED)
            self.count(AF_INET, ESTABLISHED)
            half6 = self.listener(AF_INET6, "::ffff:127.0.0.1", prog=SYN_ONLY)
            self.keep(socket.create_connection(("127.0.0.1", half6.getsockname()[1])))
            self.count(AF_INET6, LISTEN)
            self.count(AF_INET, ESTABLISHED)
            # the request socket of a v4 SYN has the listener's family (inet_reqsk_alloc):
            # it is in tcp6, with mapped addresses
            self.count(AF_INET6, SYN_RECV)
            g, h = self.pair(mapped, AF_INET6)
            self.forget(g, h)
            g.close()
            h.recv(1)
            h.close()
            self.count(AF_INET6, TIME_WAIT)

    def close(self) -> None:
        for s in self.socks:
            rst_close(s)
        self.socks.clear()


CHILD = r"""
import ctypes, encodings.idna, os, socket, struct, sys  # every import before setuid: the
uid = int(sys.argv[1])                                  # stdlib lives under /root
prog = b"".join(struct.pack("HBBI", *i) for i in
                [(0x30, 0, 0, 13), (0x45, 0, 1, 2), (6, 0, 0, 0xFFFFFFFF), (6, 0, 0, 0)])
buf = ctypes.create_string_buffer(prog, len(prog))
keep, halves = [], []
# sockets belong to the fsuid that creates them (sk_uid); this kernel lets only root attach
# socket filters, so: create as uid, attach as root, then drop root for good
os.setegid(uid); os.seteuid(uid)
for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    ls = socket.socket(fam); ls.bind((host, 0)); ls.listen(8); keep.append(ls)
    c = socket.create_connection(ls.getsockname()[:2]); s, _ = ls.accept(); keep += [c, s]
    half = socket.socket(fam); half.bind((host, 0)); halves.append(half)
os.seteuid(0); os.setegid(0)
for half in halves:  # SYN_ONLY: request sockets stay in SYN_RECV, with the listener's uid
    half.setsockopt(socket.SOL_SOCKET, 26, struct.pack("HxxxxxxP", 4, ctypes.addressof(buf)))
os.setgroups([]); os.setgid(uid); os.setuid(uid)
for half in halves:
    half.listen(8); keep.append(half)
    keep.append(socket.create_connection(half.getsockname()[:2]))
os.write(1, b"ready\n")
sys.stdin.read()
for s in keep:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); s.close()
"""


@contextlib.contextmanager
def children(script: str, argvs: list[list[str]], timeout: float = 60):
    """Child processes running `script`; each prints "ready" when set up; killed by pid."""
    procs = []
    try:
        for argv in argvs:
            procs.append(subprocess.Popen([sys.executable, "-c", script, *argv],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE))
        for p in procs:
            r, _, _ = select.select([p.stdout], [], [], timeout)
            if not r or p.stdout.readline() != b"ready\n":
                raise RuntimeError(f"child {p.pid} did not get ready")
        yield procs
    finally:
        for p in procs:
            with contextlib.suppress(OSError):
                p.stdin.close()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()


CLONE_NEWNET = 0x40000000


@pytest.fixture(scope="module")
def private_netns():
    """This process (its main thread, which creates the iterators and whose /proc/net is
    /proc/self/net) and every child it starts from here on live in a fresh network
    namespace with only lo: other users of the machine cannot add or remove sockets under
    the comparisons. The original namespace is restored afterwards."""
    libc = ctypes.CDLL(None, use_errno=True)
    orig = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        if libc.unshare(CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"unshare(CLONE_NEWNET): {os.strerror(e)}")
        try:
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
            # the namespace is empty now: what both sides show with no socket, then one
            reads = {}
            for spec in (TCP, TCP6):
                reads["none", spec.path] = proc(spec), catalog.read_once(spec)
            with socket.create_server(("127.0.0.1", 0)):
                for spec in (TCP, TCP6):
                    reads["one", spec.path] = proc(spec), catalog.read_once(spec)
            yield reads
        finally:
            if libc.setns(orig, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise OSError(e, f"setns back: {os.strerror(e)}")
    finally:
        os.close(orig)


@pytest.fixture(scope="module")
def zoo(private_netns):
    z = Zoo()
    try:
        with children(CHILD, [[str(u)] for u in OTHER_UIDS]):
            for fam in (AF_INET, AF_INET6):
                z.build(fam)
            for fam in (AF_INET, AF_INET6):
                # per child: listener, established pair, SYN_ONLY listener, its client, request
                z.count(fam, LISTEN, 2 * len(OTHER_UIDS))
                z.count(fam, ESTABLISHED, 3 * len(OTHER_UIDS))
                z.count(fam, SYN_RECV, len(OTHER_UIDS))
            yield z
    finally:
        z.close()


# ============================================================================ tests

def test_clock_t_ops():
    # kernel/time/time.c jiffies_to_clock_t for the usual HZ with USER_HZ 100
    assert net_tcp.clock_t_ops(100, 100) == []
    assert net_tcp.clock_t_ops(250, 100) == [("mul", 2), ("div", 5)]
    assert net_tcp.clock_t_ops(300, 100) == [("mul", 3333333), ("div", 10000000)]
    assert net_tcp.clock_t_ops(1000, 100) == [("div", 10)]
    assert net_tcp.clock_t_ops(50, 100) == [("mul", 2)]


@pytest.mark.kernel
def test_formats_documented():
    """The pieces stand for the kernel's format strings (as pasted in the docstring)."""
    t = net_tcp.TcpProgram(BTF.vmlinux(), AF_INET, hz=250, uhz=100)
    t.slots = net_tcp.Slots(*range(-8, -8 * 15, -8))
    s = net_tcp.Src(t.p, "tcp_sock")
    a, b = t.full_pieces(s)
    assert net_tcp.fmt_of(a) + "%pK" + net_tcp.fmt_of(b) == \
        "%4u: %08X:%04X %08X:%04X %02X %08X:%08X %02X:%08lX %08X %5u %8u %lu %d %pK %u %u %u %u %d"
    assert net_tcp.fmt_of(t.tw_pieces(net_tcp.Src(t.p, "tcp_timewait_sock"))) == \
        "%4u: %08X:%04X %08X:%04X %02X 00000000:00000000 03:%08lX 00000000     0        0 0 %d "
    assert net_tcp.fmt_of(t.req_pieces(net_tcp.Src(t.p, "tcp_request_sock"))) == \
        "%4u: %08X:%04X %08X:%04X 03 00000000:00000000 01:%08lX %08X %5u        0 0 0 "
    t6 = net_tcp.TcpProgram(BTF.vmlinux(), AF_INET6, hz=250, uhz=100)
    t6.slots = t.slots
    a6, _ = t6.full_pieces(net_tcp.Src(t6.p, "tcp_sock"))
    assert net_tcp.fmt_of(a6).startswith("%4u: %08X%08X%08X%08X:%04X %08X%08X%08X%08X:%04X %02X ")


@pytest.mark.kernel
@pytest.mark.parametrize("spec", [TCP, TCP6], ids=["tcp", "tcp6"])
def test_host_namespace(spec, btf):
    """The machine's own namespace, where other programs open and close sockets at any
    time: byte for byte (with the masking rule) whenever /proc holds still for two reads
    around ours; otherwise every socket /proc showed in both reads, with the same line
    (but for its sl and the masked columns), is in ours, and ours shows nothing else."""
    fam = AF_INET6 if spec is TCP6 else AF_INET
    host = "::1" if fam == AF_INET6 else "127.0.0.1"
    with socket.create_server((host, 0), family=fam) as lst, \
            socket.create_connection(lst.getsockname()[:2]) as c, lst.accept()[0] as s:
        for _ in range(10):
            p1, got, p2 = proc(spec), catalog.read_once(spec, btf), proc(spec)
            try:
                problems, masked = masked_diff(p1, got, p2)
            except Varied:
                time.sleep(0.05)
                continue
            assert not problems, "\n".join(problems[:20])
            print(f"{spec.path}: exact, masked {dict(masked)}")
            break
        else:
            def by_id(out):
                return {tuple(ln.split()[1:3] + ln.split()[11:12]): ln.split(None, 1)[1]
                        for ln in out.decode().splitlines()[1:]}
            a, g, b = by_id(p1), by_id(got), by_id(p2)
            assert set(a) & set(b) <= set(g) <= set(a) | set(b)
            steady = [k for k in set(a) & set(b) if a[k] == b[k]]
            assert all(g[k] == a[k] for k in steady)
            print(f"{spec.path}: /proc never held still; {len(steady)} steady lines equal")
        mine = {os.fstat(x.fileno()).st_ino for x in (lst, c, s)}
        assert mine <= set(inodes_of(got))


@pytest.mark.kernel
def test_no_socket_and_one_socket(private_netns):
    """The header comes once: with the first socket, or in the iterator's final call when
    there is none (tcp_prog_seq_show makes seq_num -1 there); with exactly one socket in
    the namespace, tcp6 (which filters it out) must not print it twice."""
    for (case, path), (want, got) in private_netns.items():
        assert got == want, (case, path)
    assert private_netns["none", "net/tcp"][1] == net_tcp.HEADER4.encode()
    assert private_netns["none", "net/tcp6"][1] == net_tcp.HEADER6.encode()
    assert private_netns["one", "net/tcp"][1].count(b"\n") == 2
    assert private_netns["one", "net/tcp6"][1] == net_tcp.HEADER6.encode()


@pytest.mark.kernel
@pytest.mark.parametrize("spec", [TCP, TCP6], ids=["tcp", "tcp6"])
def test_every_state_byte_for_byte(spec, btf, zoo):
    got, masked = compare(spec, btf)
    fam = AF_INET6 if spec is TCP6 else AF_INET
    seen = states_of(got)
    for state, n in zoo.expect[fam].items():
        assert seen[state] >= n, (spec.path, state, seen[state], n)
    assert set(seen) >= ALL_STATES, sorted(ALL_STATES - set(seen))
    assert CLOSE not in seen
    lines = got.decode().splitlines()
    header = (net_tcp.HEADER6 if fam == AF_INET6 else net_tcp.HEADER4).rstrip("\n")
    assert lines[0] == header
    if fam == AF_INET:  # every line padded to 149
        assert {len(ln) for ln in lines} == {149} or min(len(ln) for ln in lines) >= 149
    r = rows(got)
    assert [int(x[0].rstrip(":")) for x in r] == list(range(len(r)))  # sl
    shapes = collections.Counter()
    for x in r:
        tr = x[5].split(":")[0]
        shapes[tr] += 1
    assert {"00", "01", "02", "03", "04"} <= set(shapes), shapes  # every timer kind
    uids = {int(x[7]) for x in r}
    assert set(OTHER_UIDS) <= uids
    assert any(len(x) == 12 and x[3] == "05" for x in r)  # orphaned FIN_WAIT2 (timewait)
    assert any(x[-1] == "-1" for x in r if len(x) == 17)   # initial slow start
    assert any(int(x[-1]) > 0 for x in r if len(x) == 17 and x[3] == "0A")  # fastopen qlen
    if fam == AF_INET6:
        assert any("0000000000000000FFFF0000" in x[1] for x in r)  # IPv4-mapped
    print(f"{spec.path}: {len(r)} lines; masked columns (varied in /proc): {dict(masked)}")


@pytest.mark.kernel
def test_inodes_match_sock_diag(btf, zoo):
    from pyroute2 import DiagSocket

    def diag() -> dict[int, set[int]]:
        out = {}
        with DiagSocket() as ds:
            ds.bind()
            for fam in (AF_INET, AF_INET6):
                msgs = ds.get_sock_stats(family=fam, states=0xFFFFFFFF)
                out[fam] = {m["idiag_inode"] for m in msgs if m["idiag_inode"]}
        return out

    for _ in range(5):
        before = diag()
        got = {AF_INET: inodes_of(catalog.read_once(TCP, btf)),
               AF_INET6: inodes_of(catalog.read_once(TCP6, btf))}
        after = diag()
        if before == after:
            break
    assert before == after, "sock_diag never held still"
    for fam in (AF_INET, AF_INET6):
        assert len(got[fam]) == len(set(got[fam])), "an inode twice"
        assert set(got[fam]) == before[fam], (fam, sorted(set(got[fam]) ^ before[fam])[:20])
    assert zoo.mine <= set(got[AF_INET]) | set(got[AF_INET6])
    for fam in (AF_INET, AF_INET6):  # the raw dump the 10k churn test uses
        assert raw_diag_inodes(fam) == before[fam]


def _psutil_conns(kind: str):
    import psutil
    return set(psutil.net_connections(kind))


@pytest.mark.kernel
def test_psutil_reads_iterfs_files(btf, zoo, tmp_path):
    import psutil
    kinds = ("tcp", "tcp4", "tcp6", "inet")
    root = tmp_path / "proc"
    (root / "net").mkdir(parents=True)
    for name in ("udp", "udp6", "unix"):
        os.symlink(f"/proc/net/{name}", root / "net" / name)
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            os.symlink(f"/proc/{pid}", root / pid)
    os.symlink("/proc/self", root / "self")
    saved = psutil.PROCFS_PATH
    for _ in range(5):
        want = {k: _psutil_conns(k) for k in kinds}
        (root / "net" / "tcp").write_bytes(catalog.read_once(TCP, btf))
        (root / "net" / "tcp6").write_bytes(catalog.read_once(TCP6, btf))
        try:
            psutil.PROCFS_PATH = str(root)
            got = {k: _psutil_conns(k) for k in kinds}
        finally:
            psutil.PROCFS_PATH = saved
        again = {k: _psutil_conns(k) for k in kinds}
        if want == again:
            break
    assert want == again, "psutil on /proc never held still"
    for k in kinds:
        assert got[k] == want[k], (k, sorted(got[k] ^ want[k], key=str)[:10])
    me = os.getpid()
    assert any(c.pid == me and c.status == psutil.CONN_CLOSING for c in got["tcp"])
    assert any(c.pid == me and c.status == psutil.CONN_SYN_SENT for c in got["tcp6"])


def _ss(env: dict) -> bytes:
    return subprocess.run(["ss", "-tan"], env={**os.environ, **env}, check=True,
                          stdout=subprocess.PIPE).stdout


@pytest.mark.kernel
def test_ss_reads_iterfs_files(btf, zoo, tmp_path):
    # iproute2 ss uses sock_diag unless PROC_NET_TCP / PROC_ROOT is set (misc/ss.c
    # tcp_show); then it reads generic_proc_open("PROC_NET_TCP", "net/tcp") and "...TCP6".
    t4, t6 = tmp_path / "tcp", tmp_path / "tcp6"
    # it really reads the files: given only headers it lists nothing
    t4.write_bytes(net_tcp.HEADER4.encode())
    t6.write_bytes(net_tcp.HEADER6.encode())
    assert _ss({"PROC_NET_TCP": str(t4), "PROC_NET_TCP6": str(t6)}).count(b"\n") == 1
    real = {"PROC_NET_TCP": "/proc/net/tcp", "PROC_NET_TCP6": "/proc/net/tcp6"}
    ours = {"PROC_NET_TCP": str(t4), "PROC_NET_TCP6": str(t6)}
    for _ in range(5):
        want = _ss(real)
        t4.write_bytes(catalog.read_once(TCP, btf))
        t6.write_bytes(catalog.read_once(TCP6, btf))
        got = _ss(ours)
        if want == _ss(real):
            break
    assert got == want
    assert b"CLOSING" in got and b"SYN-SENT" in got and b"LAST-ACK" in got


# ============================================================================ number formatting

def _format(btf, pieces_of) -> list[bytes]:
    """Run net_tcp.Writer in a task iterator program (first task only) on pieces with
    constant sources; returns [string, its length as the writer counted it]."""
    from iterfs import asm
    from iterfs.dsl.program import IterProgram, Stack
    from iterfs.programs import link_iterator
    p = IterProgram("task", btf=btf)
    p.session(dst=net_tcp.SESS)
    done = p.label_name("done")
    p.ctx_ptr("task", dst=net_tcp.RR)
    p.skip_if_null(net_tcp.RR, done)
    p.emit(asm.ldx("dw", "r1", p.meta, btf.offsetof("bpf_iter_meta", "seq_num")),
           asm.jmp("jne", "r1", 0, done))
    table = p.string(net_tcp.HEX_TABLE)
    start, length, meta = p.stack(8), p.stack(8), p.stack(8)
    pieces = pieces_of(lambda v: (lambda dst, tmp: p.emit(asm.ld_imm64(dst, v))))
    size = net_tcp.max_width(pieces)
    end = p.stack(size + 1) + size
    p.emit(asm.stx("dw", "r10", p.meta, meta), asm.ld_imm64(net_tcp.MAGIC, net_tcp.RECIP10))
    net_tcp.Writer(p, end, size, done, table).line(pieces, start, length)
    p.emit(asm.ldx("dw", p.meta, "r10", meta))
    p.seq_printf("%s|%d", Stack(start), Stack(length))
    p.emit(asm.label(done))
    prog = p.build().load(btf=btf)
    try:
        link = link_iterator(prog)
        try:
            with link.new_iter() as fd:
                return read_all(fd.fd).rsplit(b"|", 1)
        finally:
            link.close()
    finally:
        prog.close()


U32 = [0, 1, 9, 10, 99, 100, 4095, 12345, 99999, 100000, 999999, 10**9 - 1, 10**9,
       2**31 - 1, 2**31, 2**32 - 1]
S32 = [0, 1, -1, 9, -9, 10, -10, 65535, -65536, 2**31 - 1, -2**31]
U64 = [0, 7, 2**32 - 1, 2**32, 2**32 + 9, 10**10 - 1, 10**10, 10**15 + 3, 10**19 - 1,
       10**19, 12345678901234567890, 2**63, 2**64 - 1]
HEXL = [0, 0xA, 0xFFFFFFFF, 0x100000000, 0x123456789, 0xFFFFFFFFFFFF, 2**63, 2**64 - 1]


@pytest.mark.kernel
@pytest.mark.parametrize("kind", ["u32", "width", "s32", "u64", "hex"])
def test_number_formatting(btf, kind):
    """The writer against Python's printf on values no socket of this test reaches (64-bit
    inodes, tm->when past 8 hex digits, negative ints, fields wider than their width)."""
    D, H, HL, T = net_tcp.Dec, net_tcp.Hex, net_tcp.HexLong, net_tcp.Text
    if kind == "u32":
        cases = [(lambda c, v=v: [D(c(v)), T(" ")], "%u " % v) for v in U32]
    elif kind == "width":
        cases = [(lambda c, v=v, w=w: [T("<"), D(c(v), w), T(">")], "<%*u>" % (w, v))
                 for v in U32[::2] for w in (4, 5)]
        cases += [(lambda c, v=v: [D(c(v), 8, digits=3), T(" ")], "%8u " % v) for v in (0, 7, 255)]
    elif kind == "s32":
        cases = [(lambda c, v=v: [D(c(v & 0xFFFFFFFF), signed=True), T(":")], "%d:" % v)
                 for v in S32]
    elif kind == "u64":
        cases = [(lambda c, v=v: [D(c(v), digits=20, wide=True), T(" ")], "%u " % v) for v in U64]
    else:
        cases = [(lambda c, v=v: [HL(c(v)), T(" ")], "%08X " % v) for v in HEXL]
        cases += [(lambda c: [H(c(0xDEADBEEF), 8), T(":"), H(c(0xABCD), 4), T(" "),
                              H(c(0x7), 2, 8), H(c(0x1F), 8, 8)], "DEADBEEF:ABCD 070000001F")]
    for i in range(0, len(cases), 6):
        group = cases[i:i + 6]
        want = "".join(w for _, w in group).encode()
        got, n = _format(btf, lambda c: [pc for f, _ in group for pc in f(c)])
        assert got == want
        assert int(n) == len(want)


# ============================================================================ 10k sockets

HOLDER = r"""
import os, socket, struct, sys
n, fam = int(sys.argv[1]) // 2, int(sys.argv[2])
host = "::1" if fam == socket.AF_INET6 else "127.0.0.1"
ls = socket.socket(fam); ls.bind((host, 0)); ls.listen(4096)
keep = [ls]
for i in range(n):
    c = socket.create_connection(ls.getsockname()[:2]); s, _ = ls.accept()
    keep += [c, s]
os.write(1, b"ready\n")
sys.stdin.read()
for s in keep:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); s.close()
"""

# opens connection pairs and closes (RST) each one LIFETIME seconds later, forever
CHURN = r"""
import collections, os, socket, struct, sys, time
lifetime = float(sys.argv[1])
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(4096)
live = collections.deque()
os.write(1, b"ready\n")
os.set_blocking(0, False)
while True:
    try:
        if os.read(0, 1) == b"":
            break
    except BlockingIOError:
        pass
    now = time.monotonic()
    c = socket.create_connection(ls.getsockname()); s, _ = ls.accept()
    live.append((now, c, s))
    while live and now - live[0][0] > lifetime:
        for x in live.popleft()[1:]:
            x.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); x.close()
    time.sleep(0.001)
"""

CROWD = 10_400
CHURN_LIFETIME = 2.0


@pytest.fixture(scope="module")
def crowd(private_netns):
    per = CROWD // 4
    with children(HOLDER, [[str(per), str(AF_INET)]] * 3 + [[str(per), str(AF_INET6)]]):
        # let the new connections settle: a just-accepted socket holds an extra reference
        # for a few hundred ms, so /proc's refcounts move at first. Wait until /proc reads
        # the same 0.3 s apart.
        deadline, last = time.monotonic() + 5, None
        while time.monotonic() < deadline:
            now = [(x[1], x[2], x[10]) for x in rows(proc(TCP)) + rows(proc(TCP6))]
            if now == last:
                break
            last = now
            time.sleep(0.3)
        yield


NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, NLMSG_DONE, NLMSG_ERROR = 4, 20, 3, 2
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300


def raw_diag_inodes(family: int) -> set[int]:
    """sock_diag (inet_diag_req_v2, every state) of TCP sockets, parsing nothing but
    inet_diag_msg.idiag_inode: pyroute2 needs seconds to decode 10k sockets, too slow to
    bracket a read while sockets come and go. test_inodes_match_sock_diag checks it
    against pyroute2."""
    req = struct.pack("=BBBxI", family, socket.IPPROTO_TCP, 0, 0xFFFFFFFF) + bytes(48)
    msg = struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY,
                      NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + req
    out = set()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as s:
        s.sendto(msg, (0, 0))
        while True:
            data = s.recv(1 << 20)
            off = 0
            while off < len(data):
                length, kind = struct.unpack_from("=IH", data, off)
                if kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    raise OSError(-struct.unpack_from("=i", data, off + 16)[0], "sock_diag")
                # nlmsghdr (16) + inet_diag_msg: family..retrans (4), id (48), expires,
                # rqueue, wqueue, uid (16), inode
                ino = struct.unpack_from("=I", data, off + 16 + 68)[0]
                if ino:
                    out.add(ino)
                off += (length + 3) & ~3


def _diag_inodes() -> set[int]:
    return raw_diag_inodes(AF_INET) | raw_diag_inodes(AF_INET6)


@pytest.mark.kernel
@pytest.mark.parametrize("spec", [TCP, TCP6], ids=["tcp", "tcp6"])
def test_10k_quiet_byte_for_byte(spec, btf, crowd):
    got, masked = compare(spec, btf)
    n = len(rows(got))
    assert n >= (CROWD * 3 // 4 if spec is TCP else CROWD // 4)
    print(f"{spec.path}: {n} lines, masked {dict(masked)}")


def read_chunked(spec, btf, chunk: int) -> bytes:
    """One iterator session read with read(2) calls of `chunk` bytes. Large reads make
    bpf_seq_read() overflow its 32 KiB buffer every ~200 lines and show that socket again in
    the next read (same seq_num: the sl it prints must not advance); small ones stop it
    after every line."""
    loaded = catalog.load(spec, btf)
    try:
        with loaded.link.new_iter() as fd:
            parts = []
            while b := os.read(fd.fd, chunk):
                parts.append(b)
            return b"".join(parts)
    finally:
        loaded.close()


@pytest.mark.kernel
@pytest.mark.parametrize("chunk", [100, 4096, 1 << 20])
def test_10k_read_sizes(btf, crowd, chunk):
    for _ in range(5):
        p1, got, p2 = proc(TCP), read_chunked(TCP, btf, chunk), proc(TCP)
        try:
            problems, _ = masked_diff(p1, got, p2)
            break
        except Varied:
            continue
    assert not problems, "\n".join(problems[:10])


@pytest.mark.kernel
def test_10k_while_churning(btf, crowd):
    with contextlib.ExitStack() as stack:
        links = {}
        for spec in (TCP, TCP6):
            links[spec.path] = stack.enter_context(contextlib.closing(catalog.load(spec, btf)))

        def read(spec) -> bytes:
            with links[spec.path].link.new_iter() as fd:
                return read_all(fd.fd)

        stack.enter_context(children(CHURN, [[str(CHURN_LIFETIME)]]))
        time.sleep(0.3)
        for _ in range(3):
            t0 = time.monotonic()
            before = _diag_inodes()
            out4 = read(TCP)
            out6 = read(TCP6)
            after = _diag_inodes()
            window = time.monotonic() - t0
            # a socket seen by the read was alive at `before` or at `after` only if none
            # lives shorter than the window
            assert window < CHURN_LIFETIME, window
            for out in (out4, out6):
                r = rows(out)
                ids = [(x[1], x[2], x[11]) for x in r]  # addresses and the socket pointer
                assert len(ids) == len(set(ids)), "a socket twice"
                assert [int(x[0].rstrip(":")) for x in r] == list(range(len(r)))
            ino = inodes_of(out4) + inodes_of(out6)
            assert len(ino) == len(set(ino)), "an inode twice"
            assert set(ino) <= before | after, sorted(set(ino) - (before | after))[:10]
            assert before & after <= set(ino), sorted((before & after) - set(ino))[:10]
            assert len(ino) >= CROWD
