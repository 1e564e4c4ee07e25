"""iterfs.fs: the handlers called directly, then a real FUSE mount served from a thread."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import random
import stat
import subprocess
import sys
import tempfile
import threading
import time
import weakref

import pyfuse3
import pytest
import trio

import iterfs.fs as fs_module
from fusehelp import errno_of, fd_count, mounted, require_fuse, wait_for
from iterfs.fs import FileNode, IterFS, MountError, serve, terminate

# -- sources ---------------------------------------------------------------------------


def pattern(size: int, tag: bytes = b"x") -> bytes:
    """Deterministic, offset-revealing content: numbered lines, cut to `size` bytes."""
    line_len = 16 + len(tag)
    lines = size // line_len + 1
    return b"".join(b"%015d%s\n" % (i, tag) for i in range(lines))[:size]


class Source:
    """An `open` callable for FileNode that records what it handed out."""

    def __init__(self, data: bytes, *, piped: bool = True, gate: threading.Event | None = None):
        self.data = data
        self.piped = piped
        self.gate = gate
        self.opens = 0
        self.fds: list[int] = []
        self._tmp: str | None = None

    def _writer(self, w: int) -> None:
        try:
            if self.gate is not None:
                self.gate.wait(30)
            view = memoryview(self.data)
            for i in range(0, len(view), 65536):
                os.write(w, view[i : i + 65536])  # really streamed: a pipe holds 64 KiB
        except OSError:
            pass  # the reader closed early (EPIPE)
        finally:
            os.close(w)

    def __call__(self) -> int:
        self.opens += 1
        if self.piped:
            r, w = os.pipe()
            threading.Thread(target=self._writer, args=(w,), daemon=True).start()
            fd = r
        else:
            fd = os.open(self._file(), os.O_RDONLY | os.O_CLOEXEC)
        self.fds.append(fd)
        return fd

    def _file(self) -> str:
        if self._tmp is None:
            f = tempfile.NamedTemporaryFile(delete=False, prefix="iterfs-src-")
            f.write(self.data)
            f.close()
            self._tmp = f.name
            weakref.finalize(self, os.unlink, f.name)
        return self._tmp


def node(data: bytes, mode: int = 0o444, **kw) -> FileNode:
    return FileNode(mode, Source(data, **kw), name_hint="test")


def failing_open(exc: BaseException):
    def open_():
        raise exc

    return open_


@pytest.fixture
def fail_reads(monkeypatch):
    """Sources made by planned_source() fail on read: [n_good_reads, errno].

    They are memfds, known by (st_dev, st_ino) rather than by fd number, which the
    kernel reuses as soon as a handle is released.
    """
    plan: dict[tuple[int, int], list[int]] = {}
    real_readv = os.readv

    def fake_readv(fd, buffers):
        st = os.fstat(fd)
        step = plan.get((st.st_dev, st.st_ino))
        if step is None:
            return real_readv(fd, buffers)
        if step[0] > 0:
            step[0] -= 1
            n = min(len(buffers[0]), 65536)
            buffers[0][:n] = b"g" * n
            return n
        raise OSError(step[1], os.strerror(step[1]))

    monkeypatch.setattr(fs_module, "_os_readv", fake_readv)
    return plan


def planned_source(plan, good_reads: int, err: int):
    def open_():
        fd = os.memfd_create("iterfs-failing-source", os.MFD_CLOEXEC)
        st = os.fstat(fd)
        plan[(st.st_dev, st.st_ino)] = [good_reads, err]
        return fd

    return open_


# -- the handlers called directly (no kernel needed) -----------------------------------


def run(coro_fn, *args):
    return trio.run(coro_fn, *args)


def fuse_errno(coro_fn, *args) -> int:
    try:
        trio.run(coro_fn, *args)
    except pyfuse3.FUSEError as exc:
        return exc.errno
    return 0


TREE = {
    "tasks": node(b"t\n"),
    "net/tcp": node(b"tcp\n"),
    "net/udp": node(b"udp\n", mode=0o440),
    "bpf/maps": node(b"maps\n"),
}


def test_paths_are_validated():
    for bad in ["", "/abs", "a//b", "a/", "./a", "a/../b", "nul\0"]:
        with pytest.raises(ValueError):
            IterFS({bad: node(b"")})
    with pytest.raises(ValueError):
        IterFS({"net": node(b""), "net/tcp": node(b"")})
    with pytest.raises(ValueError):
        IterFS({"net/tcp": node(b""), "net": node(b"")})
    with pytest.raises(TypeError):
        IterFS({"a": "not a node"})


def test_lookup_getattr_direct():
    ops = IterFS(TREE, uid=7, gid=8, entry_timeout=0.5, attr_timeout=0.25)
    root = run(ops.getattr, pyfuse3.ROOT_INODE)
    assert stat.S_ISDIR(root.st_mode) and stat.S_IMODE(root.st_mode) == 0o555
    assert root.st_nlink == 4  # ".", "..", net, bpf
    net = run(ops.lookup, pyfuse3.ROOT_INODE, b"net", None)
    udp = run(ops.lookup, net.st_ino, b"udp", None)
    assert stat.S_ISREG(udp.st_mode) and stat.S_IMODE(udp.st_mode) == 0o440
    assert (udp.st_nlink, udp.st_size, udp.st_uid, udp.st_gid) == (1, 0, 7, 8)
    assert udp.st_mtime_ns == udp.st_ctime_ns == ops.mount_ns
    assert (udp.entry_timeout, udp.attr_timeout) == (0.5, 0.25)
    assert run(ops.lookup, net.st_ino, b".", None).st_ino == net.st_ino
    assert run(ops.lookup, net.st_ino, b"..", None).st_ino == pyfuse3.ROOT_INODE
    assert run(ops.lookup, pyfuse3.ROOT_INODE, b"..", None).st_ino == pyfuse3.ROOT_INODE
    assert fuse_errno(ops.lookup, net.st_ino, b"nope", None) == errno.ENOENT
    assert fuse_errno(ops.lookup, udp.st_ino, b"x", None) == errno.ENOTDIR
    assert fuse_errno(ops.getattr, 999999, None) == errno.ENOENT
    assert fuse_errno(ops.opendir, udp.st_ino, None) == errno.ENOTDIR
    assert fuse_errno(ops.open, net.st_ino, os.O_RDONLY, None) == errno.EISDIR


def test_readdir_offsets_direct(monkeypatch):
    ops = IterFS({f"d/f{i:03d}": node(b"") for i in range(50)})
    d = run(ops.lookup, pyfuse3.ROOT_INODE, b"d", None).st_ino
    fh = run(ops.opendir, d, None)
    budget = [7]  # entries the "kernel buffer" takes per readdir call
    seen: list[tuple[bytes, int]] = []

    def reply(token, name, attr, next_id):
        if budget[0] == 0:
            return False
        budget[0] -= 1
        seen.append((name, next_id))
        return True

    monkeypatch.setattr(pyfuse3, "readdir_reply", reply)
    start = 0
    while True:
        before = len(seen)
        budget[0] = 7
        run(ops.readdir, fh, start, None)
        if len(seen) == before:
            break
        start = seen[-1][1]
    run(ops.releasedir, fh)
    names = [n for n, _ in seen]
    assert names == [b".", b".."] + [b"f%03d" % i for i in range(50)]


def test_mutations_are_erofs_direct():
    ops = IterFS(TREE)
    i = pyfuse3.ROOT_INODE
    calls = [
        (ops.setattr, i, None, None, None, None),
        (ops.write, 1, 0, b"x"),
        (ops.create, i, b"n", 0o644, os.O_WRONLY, None),
        (ops.mkdir, i, b"n", 0o755, None),
        (ops.mknod, i, b"n", 0o644, 0, None),
        (ops.unlink, i, b"tasks", None),
        (ops.rmdir, i, b"net", None),
        (ops.rename, i, b"tasks", i, b"t2", 0, None),
        (ops.symlink, i, b"l", b"tasks", None),
        (ops.link, 2, i, b"l", None),
        (ops.setxattr, i, b"user.a", b"v", None),
        (ops.removexattr, i, b"user.a", None),
    ]
    for fn, *args in calls:
        assert fuse_errno(fn, *args) == errno.EROFS, fn.__name__
    tasks = run(ops.lookup, i, b"tasks", None).st_ino
    for flags in (os.O_WRONLY, os.O_RDWR):
        assert fuse_errno(ops.open, tasks, flags, None) == errno.EROFS
    assert fuse_errno(ops.getxattr, i, b"user.a", None) == errno.ENODATA
    assert run(ops.listxattr, i, None) == []
    assert fuse_errno(ops.access, tasks, os.W_OK, None) == errno.EROFS
    assert run(ops.access, tasks, os.R_OK, None) is True
    assert run(ops.statfs, None).f_namemax == 255


def test_replace_keeps_inodes_direct():
    ops = IterFS({"a": node(b"1"), "d/b": node(b"2"), "gone": node(b"3")})
    a = run(ops.lookup, pyfuse3.ROOT_INODE, b"a", None).st_ino
    gone = run(ops.lookup, pyfuse3.ROOT_INODE, b"gone", None).st_ino
    ops.replace({"a": node(b"1'", mode=0o400), "d/b": node(b"2"), "new": node(b"4")})
    a2 = run(ops.lookup, pyfuse3.ROOT_INODE, b"a", None)
    assert a2.st_ino == a and stat.S_IMODE(a2.st_mode) == 0o400
    assert fuse_errno(ops.lookup, pyfuse3.ROOT_INODE, b"gone", None) == errno.ENOENT
    assert fuse_errno(ops.open, gone, os.O_RDONLY, None) == errno.ENOENT
    assert run(ops.getattr, gone, None).st_nlink == 0  # like an unlinked open file
    ops.replace({"a/now_a_dir": node(b"")})
    a3 = run(ops.lookup, pyfuse3.ROOT_INODE, b"a", None)
    assert stat.S_ISDIR(a3.st_mode) and a3.st_ino != a
    ops.replace({"a": node(b"")})
    assert run(ops.lookup, pyfuse3.ROOT_INODE, b"a", None).st_ino == a


def test_streaming_reads_direct():
    data = pattern(3 * 1024 * 1024 + 17)
    src = Source(data)
    ops = IterFS({"big": FileNode(0o444, src)})
    ino = run(ops.lookup, pyfuse3.ROOT_INODE, b"big", None).st_ino

    async def body():
        fh = (await ops.open(ino, os.O_RDONLY, None)).fh
        assert bytes(await ops.read(fh, 0, 1)) == data[:1]
        assert bytes(await ops.read(fh, 1_000_001, 333)) == data[1_000_001:1_000_334]
        assert bytes(await ops.read(fh, 5, 10)) == data[5:15]
        out = bytearray()
        while chunk := await ops.read(fh, len(out), 131072):
            out += chunk
        assert out == data
        assert bytes(await ops.read(fh, len(data) + 10, 10)) == b""
        # concurrent reads on one handle are serialised, on different handles parallel
        fh2 = (await ops.open(ino, os.O_RDONLY, None)).fh
        results = {}

        async def one(key, fh, off):
            results[key] = bytes(await ops.read(fh, off, 4096))

        async with trio.open_nursery() as n:
            for k, off in enumerate([2_000_000, 10, 3_000_000, 700_000]):
                n.start_soon(one, ("b", k), fh2, off)
                n.start_soon(one, ("a", k), fh, off)
        for (_, k), got in results.items():
            off = [2_000_000, 10, 3_000_000, 700_000][k]
            assert got == data[off : off + 4096]
        assert ops.open_handles() == 2
        await ops.release(fh)
        await ops.release(fh2)
        assert ops.open_handles() == 0
        with pytest.raises(pyfuse3.FUSEError):
            await ops.read(fh, 0, 1)

    run(body)
    assert src.opens == 2


def test_background_pump_direct():
    """With a nursery lent (as serve() does), pumps stream while readers wait and wake."""
    data = pattern(3 * 1024 * 1024, b"bg")
    gate, gate2 = threading.Event(), threading.Event()
    src, src2 = Source(data, gate=gate), Source(data, gate=gate2)
    ops = IterFS({"f": FileNode(0o444, src), "g": FileNode(0o444, src2)})
    f = run(ops.lookup, pyfuse3.ROOT_INODE, b"f", None).st_ino
    g = run(ops.lookup, pyfuse3.ROOT_INODE, b"g", None).st_ino

    async def body():
        async with trio.open_nursery() as nursery:
            ops._nursery = nursery
            fh = (await ops.open(f, os.O_RDONLY, None)).fh
            got = {}

            async def reader(key, off, size):
                got[key] = bytes(await ops.read(fh, off, size))

            nursery.start_soon(reader, "far", 2_500_000, 1000)
            nursery.start_soon(reader, "near", 10, 10)
            await trio.sleep(0.05)
            assert got == {}  # both wait for the blocked source, the loop does not
            gate.set()
            with trio.fail_after(10):
                while len(got) < 2:
                    await trio.sleep(0.01)
            assert got == {"far": data[2_500_000:2_501_000], "near": data[10:20]}
            out = bytearray()
            while chunk := await ops.read(fh, len(out), 131072):
                out += chunk
            assert out == data
            await ops.release(fh)

            fh2 = (await ops.open(g, os.O_RDONLY, None)).fh  # its pump blocks on gate2
            await trio.sleep(0.05)
            await ops.release(fh2)  # returns at once; the fd waits for the pump
            assert ops.open_handles() == 0
            assert os.fstat(src2.fds[0])
            gate2.set()
            with trio.fail_after(10):
                while errno_of(os.fstat, src2.fds[0]) != errno.EBADF:
                    await trio.sleep(0.01)
            ops._nursery = None

    run(body)
    assert (src.opens, src2.opens) == (1, 1)


def test_read_errors_direct(fail_reads, caplog):
    src = planned_source(fail_reads, good_reads=1, err=errno.E2BIG)
    ops = IterFS({"bad": FileNode(0o444, src)})
    ino = run(ops.lookup, pyfuse3.ROOT_INODE, b"bad", None).st_ino

    async def body():
        fh = (await ops.open(ino, os.O_RDONLY, None)).fh
        for off in (0, 100_000, 0):  # 64 KiB arrived, then E2BIG
            with pytest.raises(pyfuse3.FUSEError) as e:
                await ops.read(fh, off, 131072)
            assert e.value.errno == errno.EIO
        assert bytes(await ops.read(fh, 10, 5)) == b"ggggg"  # what arrived is served
        await ops.release(fh)

    with caplog.at_level(logging.ERROR, logger="iterfs.fs"):
        run(body)
    logged = [r for r in caplog.records if "bad" in r.getMessage()]
    assert len(logged) == 1 and "Argument list too long" in logged[0].getMessage()


def test_terminate_without_session_is_a_noop():
    terminate()
    terminate()


# -- a real mount ----------------------------------------------------------------------


@pytest.fixture
def mount(tmp_path):
    """mount(files, **iterfs_kwargs) -> Mount; unmounted at teardown whatever happened."""
    require_fuse()
    with contextlib.ExitStack() as stack:
        count = [0]

        def make(files, **kw):
            count[0] += 1
            ops = IterFS(files, **kw)
            return stack.enter_context(mounted(ops, tmp_path / f"mnt{count[0]}"))

        yield make


def read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.fuse
def test_tree_listing(mount):
    m = mount(TREE, uid=12, gid=34)
    mp = m.mountpoint
    assert sorted(os.listdir(mp)) == ["bpf", "net", "tasks"]
    assert sorted(os.listdir(f"{mp}/net")) == ["tcp", "udp"]
    ls = subprocess.run(["ls", "-a", mp], capture_output=True, text=True, check=True, timeout=10)
    assert ls.stdout.split() == [".", "..", "bpf", "net", "tasks"]
    st = os.stat(f"{mp}/net/udp")
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o440
    assert (st.st_size, st.st_nlink, st.st_uid, st.st_gid) == (0, 1, 12, 34)
    assert st.st_mtime_ns == st.st_ctime_ns == m.ops.mount_ns
    dst = os.stat(f"{mp}/net")
    assert stat.S_ISDIR(dst.st_mode) and stat.S_IMODE(dst.st_mode) == 0o555
    assert os.stat(f"{mp}/net/.").st_ino == dst.st_ino
    assert os.stat(f"{mp}/net/..").st_ino == os.stat(mp).st_ino
    assert errno_of(os.stat, f"{mp}/nope") == errno.ENOENT
    assert errno_of(os.listdir, f"{mp}/tasks") == errno.ENOTDIR
    assert errno_of(read_file, f"{mp}/net") == errno.EISDIR
    sv = os.statvfs(mp)
    assert sv.f_flag & os.ST_RDONLY and sv.f_flag & os.ST_NOSUID
    mounts = open("/proc/self/mounts").read()
    assert f"iterfs {os.path.realpath(mp)} fuse" in mounts


@pytest.mark.fuse
def test_many_entries_listing(mount):
    files = {f"dir/entry-{i:05d}-{'n' * 40}": node(b"") for i in range(3000)}
    m = mount(files)
    assert sorted(os.listdir(f"{m.mountpoint}/dir")) == sorted(p.split("/")[1] for p in files)


@pytest.mark.fuse
def test_cat_and_python_read(mount):
    small = pattern(5000, b"s")
    m = mount({"small": node(small), "file": node(small, piped=False), "empty": node(b"")})
    mp = m.mountpoint
    for name in ("small", "file"):
        cat = subprocess.run(["cat", f"{mp}/{name}"], capture_output=True, check=True, timeout=10)
        assert cat.stdout == small
        assert read_file(f"{mp}/{name}") == small
        with open(f"{mp}/{name}") as f:  # text mode, line iteration
            assert f.readlines() == small.decode().splitlines(keepends=True)
    assert read_file(f"{mp}/empty") == b""


@pytest.mark.fuse
def test_pread_offsets_small_reads_and_rereads(mount):
    data = pattern(1024 * 1024 + 333, b"p")
    m = mount({"f": node(data)})
    fd = os.open(f"{m.mountpoint}/f", os.O_RDONLY)
    try:
        rng = random.Random(4)
        offsets = [7, 1, 65535, 65536, 131071, 999_999, 3, len(data) - 1, 500_001]
        offsets += [rng.randrange(len(data)) for _ in range(50)]
        for off in offsets:  # out of order: forwards past the buffer, back into it
            size = rng.choice([1, 2, 17, 4095, 4096, 70_000, 200_000])
            assert os.pread(fd, size, off) == data[off : off + size], (off, size)
        assert os.pread(fd, 10, len(data)) == b""
        assert os.pread(fd, 10, len(data) + 12345) == b""
        assert os.pread(fd, 100, len(data) - 40) == data[-40:]
    finally:
        os.close(fd)
    fd = os.open(f"{m.mountpoint}/f", os.O_RDONLY)
    try:
        one_by_one = b"".join(os.read(fd, 1) for _ in range(3000))
        assert one_by_one == data[:3000]
        os.lseek(fd, 10, os.SEEK_SET)
        assert os.read(fd, 20) == data[10:30]
    finally:
        os.close(fd)


@pytest.mark.fuse
def test_large_streamed_output_is_exact(mount):
    data = pattern(9 * 1024 * 1024 + 5, b"large")
    m = mount({"large": node(data)})
    path = f"{m.mountpoint}/large"
    assert read_file(path) == data
    cat = subprocess.run(["cat", path], capture_output=True, check=True, timeout=60)
    assert hashlib.sha256(cat.stdout).digest() == hashlib.sha256(data).digest()
    dd = subprocess.run(
        ["dd", f"if={path}", "bs=1M", "status=none"], capture_output=True, check=True, timeout=60
    )
    assert dd.stdout == data


@pytest.mark.fuse
def test_each_open_calls_source_once_and_release_closes(mount):
    a, b = Source(pattern(300_000)), Source(pattern(1000), piped=False)
    m = mount({"a": FileNode(0o444, a), "b": FileNode(0o444, b)})
    mp = m.mountpoint
    time.sleep(0.05)
    baseline = fd_count()
    held = [open(f"{mp}/a", "rb") for _ in range(4)] + [open(f"{mp}/b", "rb")]
    assert a.opens == 4 and b.opens == 1 and m.ops.open_handles() == 5
    assert held[0].read(10) == a.data[:10]  # partly read: the writer is still blocked
    held[1].read()
    for f in held:
        f.close()
    assert wait_for(lambda: m.ops.open_handles() == 0)
    assert wait_for(lambda: fd_count() == baseline), (fd_count(), baseline)
    for i in range(20):
        assert read_file(f"{mp}/b") == b.data
    assert b.opens == 21
    assert wait_for(lambda: m.ops.open_handles() == 0 and fd_count() == baseline)


@pytest.mark.fuse
def test_32_concurrent_readers(mount):
    datas = {f"f{i}": pattern(2 * 1024 * 1024 + i * 977, b"%d" % i) for i in range(4)}
    m = mount({name: node(d) for name, d in datas.items()})
    results: dict[int, bool] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(32)

    def reader(k):
        name = f"f{k % 4}"
        try:
            barrier.wait(10)
            results[k] = read_file(f"{m.mountpoint}/{name}") == datas[name]
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert results == {k: True for k in range(32)}
    assert wait_for(lambda: m.ops.open_handles() == 0)


@pytest.mark.fuse
def test_concurrent_preads_on_one_handle(mount):
    data = pattern(4 * 1024 * 1024 + 7, b"shared")
    m = mount({"f": node(data)})
    fd = os.open(f"{m.mountpoint}/f", os.O_RDONLY)
    bad: list = []

    def worker(seed):
        rng = random.Random(seed)
        for _ in range(60):
            off = rng.randrange(len(data) + 100)
            size = rng.choice([1, 100, 4096, 65536, 131072, 300_000])
            got = os.pread(fd, size, off)
            if got != data[off : off + size]:
                bad.append((off, size, len(got)))

    try:
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        os.close(fd)
    assert not bad
    assert wait_for(lambda: m.ops.open_handles() == 0)


@pytest.mark.fuse
def test_killed_reader_leaks_nothing(mount):
    gate = threading.Event()
    slow = Source(pattern(500_000, b"k"), gate=gate)
    m = mount({"slow": FileNode(0o444, slow), "ok": node(b"ok\n")})
    baseline = fd_count()
    proc = subprocess.Popen(["cat", f"{m.mountpoint}/slow"], stdout=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: slow.opens == 1)
        time.sleep(0.1)  # cat is blocked in read(), waiting for the source
        proc.kill()
        # A request already in userspace holds even SIGKILL until it is answered
        # (pyfuse3 ignores FUSE_INTERRUPT); the session keeps serving meanwhile.
        assert read_file(f"{m.mountpoint}/ok") == b"ok\n"
        gate.set()
        proc.wait(10)
        assert wait_for(lambda: m.ops.open_handles() == 0)
    finally:
        gate.set()
        if proc.poll() is None:
            proc.wait(30)
    assert wait_for(lambda: fd_count() == baseline), (fd_count(), baseline)
    assert read_file(f"{m.mountpoint}/ok") == b"ok\n" and m.alive()


@pytest.mark.fuse
def test_blocked_reader_does_not_block_others(mount):
    gate = threading.Event()
    slow = Source(pattern(100_000, b"slow"), gate=gate)
    m = mount({"slow": FileNode(0o444, slow), "fast": node(b"fast\n")})
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("slow", read_file(f"{m.mountpoint}/slow")))
    t.start()
    try:
        assert wait_for(lambda: slow.opens == 1)
        time.sleep(0.1)  # the slow read is now waiting in a worker thread
        fast = threading.Thread(
            target=lambda: got.setdefault("fast", [read_file(f"{m.mountpoint}/fast") for _ in range(20)])
        )
        fast.start()
        fast.join(10)
        assert got.get("fast") == [b"fast\n"] * 20
        assert os.listdir(m.mountpoint)
        assert "slow" not in got
    finally:
        gate.set()
        t.join(30)
    assert got["slow"] == slow.data


@pytest.mark.fuse
def test_mutations_are_erofs(mount, tmp_path):
    m = mount({"tasks": node(b"t\n"), "net/tcp": node(b"x")})
    mp = m.mountpoint
    f = f"{mp}/tasks"
    checks = {
        "open w": lambda: open(f, "wb"),
        "open r+": lambda: open(f, "r+b"),
        "open a": lambda: open(f, "ab"),
        "create": lambda: open(f"{mp}/new", "wb"),
        "os.open creat": lambda: os.open(f"{mp}/new", os.O_CREAT | os.O_WRONLY, 0o644),
        "chmod": lambda: os.chmod(f, 0o777),
        "chown": lambda: os.chown(f, 1, 1),
        "utime": lambda: os.utime(f, (1, 1)),
        "truncate": lambda: os.truncate(f, 0),
        "mkdir": lambda: os.mkdir(f"{mp}/d"),
        "rmdir": lambda: os.rmdir(f"{mp}/net"),
        "unlink": lambda: os.unlink(f),
        "rename": lambda: os.rename(f, f"{mp}/t2"),
        "symlink": lambda: os.symlink("tasks", f"{mp}/l"),
        "link": lambda: os.link(f, f"{mp}/l"),
        "mkfifo": lambda: os.mkfifo(f"{mp}/fifo"),
        "setxattr": lambda: os.setxattr(f, "user.x", b"1"),
        "removexattr": lambda: os.removexattr(f, "user.x"),
    }
    for what, fn in checks.items():
        assert errno_of(fn) == errno.EROFS, what
    assert errno_of(os.getxattr, f, "user.x") == errno.ENODATA
    assert errno_of(os.getxattr, mp, "security.selinux") == errno.ENODATA
    assert os.listxattr(f) == [] and os.listxattr(mp) == []
    assert os.access(f, os.R_OK) and not os.access(f, os.W_OK)
    assert read_file(f) == b"t\n" and m.alive()


@pytest.mark.fuse
def test_read_errors_give_eio_and_the_session_survives(mount, fail_reads, tmp_path, caplog):
    e2big = planned_source(fail_reads, good_reads=0, err=errno.E2BIG)
    eagain_late = planned_source(fail_reads, good_reads=1, err=errno.EAGAIN)
    a_dir = str(tmp_path)
    m = mount(
        {
            "e2big": FileNode(0o444, e2big),
            "late": FileNode(0o444, eagain_late),
            "isdir": FileNode(0o444, lambda: os.open(a_dir, os.O_RDONLY | os.O_CLOEXEC)),
            "ok": node(b"still fine\n"),
        }
    )
    mp = m.mountpoint
    with caplog.at_level(logging.ERROR, logger="iterfs.fs"):
        assert errno_of(read_file, f"{mp}/e2big") == errno.EIO
        assert errno_of(read_file, f"{mp}/isdir") == errno.EIO  # a real kernel EISDIR
        fd = os.open(f"{mp}/late", os.O_RDONLY)
        try:
            assert os.pread(fd, 100, 0) == b"g" * 100  # produced before the failure
            assert errno_of(os.pread, fd, 100, 200_000) == errno.EIO
            assert errno_of(os.pread, fd, 100, 300_000) == errno.EIO
        finally:
            os.close(fd)
        cat = subprocess.run(["cat", f"{mp}/e2big"], capture_output=True, timeout=10)
        assert cat.returncode != 0 and b"Input/output error" in cat.stderr
        assert read_file(f"{mp}/ok") == b"still fine\n"
    late_logs = [r for r in caplog.records if "late" in r.getMessage()]
    assert len(late_logs) == 1  # once per handle
    assert wait_for(lambda: m.ops.open_handles() == 0)
    assert m.alive()


@pytest.mark.fuse
def test_open_errors_map_to_errno(mount):
    m = mount(
        {
            "eacces": FileNode(0o444, failing_open(PermissionError(errno.EACCES, "no"))),
            "emfile": FileNode(0o444, failing_open(OSError(errno.EMFILE, "full"))),
            "bug": FileNode(0o444, failing_open(ValueError("a bug in a catalog entry"))),
            "notfd": FileNode(0o444, lambda: "not an fd"),
            "ok": node(b"ok\n"),
        }
    )
    mp = m.mountpoint
    assert errno_of(read_file, f"{mp}/eacces") == errno.EACCES
    assert errno_of(read_file, f"{mp}/emfile") == errno.EMFILE
    assert errno_of(read_file, f"{mp}/bug") == errno.EIO
    assert errno_of(read_file, f"{mp}/notfd") == errno.EIO
    assert read_file(f"{mp}/ok") == b"ok\n"
    assert wait_for(lambda: m.ops.open_handles() == 0) and m.alive()


@pytest.mark.fuse
def test_replace_while_open(mount):
    old = pattern(2 * 1024 * 1024, b"old")
    new = pattern(70_000, b"new")
    m = mount({"a": node(old), "b": node(b"b\n"), "dir/c": node(b"c\n")})
    mp = m.mountpoint
    ino_a = os.stat(f"{mp}/a").st_ino
    f = open(f"{mp}/a", "rb")
    held_b = open(f"{mp}/b", "rb")
    try:
        head = f.read(100_000)
        m.ops.replace({"a": node(new), "d/e": node(b"e\n"), "dir/c": node(b"c2\n")})
        assert sorted(os.listdir(mp)) == ["a", "d", "dir"]
        assert read_file(f"{mp}/a") == new  # a new open gets the new file
        assert errno_of(read_file, f"{mp}/b") == errno.ENOENT
        assert read_file(f"{mp}/d/e") == b"e\n"
        assert read_file(f"{mp}/dir/c") == b"c2\n"
        assert head + f.read() == old  # the old handle finishes its own output
        assert held_b.read() == b"b\n"  # even when its path is gone
        os.fstat(held_b.fileno())
        assert os.stat(f"{mp}/a").st_ino == ino_a
        time.sleep(1.1)  # past entry_timeout: the kernel asks again
        assert errno_of(os.stat, f"{mp}/b") == errno.ENOENT
    finally:
        f.close()
        held_b.close()
    assert wait_for(lambda: m.ops.open_handles() == 0)
    assert m.alive()


@pytest.mark.fuse
def test_mount_failure_is_reported_and_the_next_mount_works(tmp_path, mount):
    require_fuse()
    ops = IterFS({"x": node(b"x")})

    async def attempt():
        await serve(ops, str(tmp_path / "does-not-exist"))

    with pytest.raises(MountError):
        trio.run(attempt)
    m = mount({"x": node(b"x\n")})
    assert read_file(f"{m.mountpoint}/x") == b"x\n"


DAEMON = """
import os, signal, sys, trio
from iterfs.fs import FileNode, IterFS, serve, terminate

mode, mountpoint, source = sys.argv[1:]

async def main():
    ops = IterFS({"hello": FileNode(0o444, lambda: os.open(source, os.O_RDONLY))})
    async with trio.open_nursery() as nursery:
        if mode == "receiver":
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                await nursery.start(serve, ops, mountpoint)
                print("ready", flush=True)
                async for _ in signals:
                    terminate()
                    break
        else:  # a plain handler, running between two bytecodes of the trio thread
            signal.signal(signal.SIGTERM, lambda *_: terminate())
            await nursery.start(serve, ops, mountpoint)
            print("ready", flush=True)
    print("done", ops.open_handles(), flush=True)

trio.run(main)
"""


@pytest.mark.fuse
@pytest.mark.parametrize("mode", ["receiver", "handler"])
def test_daemon_stops_on_sigterm(tmp_path, mode):
    require_fuse()
    import signal

    mp = tmp_path / "mnt"
    mp.mkdir()
    src = tmp_path / "hello.txt"
    src.write_bytes(b"hello from a file\n")
    proc = subprocess.Popen(
        [sys.executable, "-c", DAEMON, mode, str(mp), str(src)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout.readline() == b"ready\n"
        assert read_file(f"{mp}/hello") == b"hello from a file\n"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err.decode()
        assert out == b"done 0\n"
        assert not os.path.ismount(mp)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(["fusermount3", "-u", "-z", str(mp)], capture_output=True)
