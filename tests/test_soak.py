"""A bounded soak: 32 reader processes read every file of one daemon at random sizes and
offsets while a controller SIGKILLs them mid-read; then nothing may have leaked.

ITERFS_SOAK_SECONDS sets the duration (default 60; 10 is enough while developing),
ITERFS_SOAK_SEED the random choices (printed). Run with `pytest -s` to see the summary."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import stat
import subprocess
import sys
import time

import pytest

from daemonhelp import Daemon, pin_root_for
from iterfs import syscall
from iterfs.daemon import mount_state

pytestmark = [pytest.mark.kernel, pytest.mark.fuse]

SOAK_SECONDS = float(os.environ.get("ITERFS_SOAK_SECONDS", "60"))
READERS = 32
HANG = 30.0  # seconds without one finished syscall: a reader is stuck


# --- the daemon's processes, fds, memory, links and pins ---------------------------------

def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_targets(pid: int) -> dict[int, str]:
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
    return out


def fd_diff(before: dict[int, str], after: dict[int, str]) -> str:
    gone = sorted(f"{fd}:{t}" for fd, t in before.items() if after.get(fd) != t)
    new = sorted(f"{fd}:{t}" for fd, t in after.items() if before.get(fd) != t)
    return f"closed {gone}, opened {new}"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:"))


def start_time(pid: int) -> int | None:
    """The process's start time (field 22 of stat), None once it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in (b"Z", b"X") else int(fields[19])


def descendants(pid: int) -> dict[int, int]:
    """pid -> start time of every live descendant of pid."""
    out, todo = {}, [pid]
    while todo:
        p = todo.pop()
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tids:
            try:
                with open(f"/proc/{p}/task/{t}/children") as f:
                    kids = [int(k) for k in f.read().split()]
            except OSError:
                continue
            for k in kids:
                st = start_time(k)
                if st is not None and k not in out:
                    out[k] = st
                    todo.append(k)
    return out


def fuse_conn(mountpoint: str) -> int | None:
    """The FUSE connection number (the minor of the mount's device) of mountpoint."""
    mp = os.path.realpath(mountpoint)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == mp:
                return int(fields[2].split(":")[1])
    return None


def fuse_holders(conn: int) -> set[int]:
    """Processes holding a /dev/fuse fd of connection conn (whoever serves the mount)."""
    out = set()
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{p}/fd"):
                if os.readlink(f"/proc/{p}/fd/{fd}") == "/dev/fuse":
                    with open(f"/proc/{p}/fdinfo/{fd}") as f:
                        if f"fuse_connection:\t{conn}\n" in f.read():
                            out.add(int(p))
        except OSError:
            continue
    return out


def prog_ids(pids) -> set[int]:
    """Ids of the BPF programs (and of the programs of links) the processes hold fds of."""
    out = set()
    for p in pids:
        try:
            fds = os.listdir(f"/proc/{p}/fdinfo")
        except OSError:
            continue
        for fd in fds:
            try:
                with open(f"/proc/{p}/fdinfo/{fd}") as f:
                    out.update(int(ln.split()[1]) for ln in f if ln.startswith("prog_id:"))
            except OSError:
                continue
    return out


def links_of(progs: set[int]) -> set[int]:
    """Ids of every BPF link (pinned, held, or kept by an iterator fd) running one of progs."""
    out = set()
    for lid in syscall.ids("link"):
        try:
            with syscall.get_fd_by_id("link", lid) as fd:
                if syscall.link_info(fd.fd)[0].prog_id in progs:
                    out.add(lid)
        except OSError:  # gone meanwhile
            continue
    return out


def pins(root: str) -> set[str]:
    out = set()
    for d, _, files in os.walk(root):
        out.update(os.path.relpath(os.path.join(d, f), root) for f in files)
    return out


def stack(pid: int | None) -> str:
    """Where a process sleeps in the kernel (for the message of a hang)."""
    try:
        with open(f"/proc/{pid}/wchan") as f:
            wchan = f.read()
        with open(f"/proc/{pid}/stack") as f:
            return f"pid {pid} in {wchan}: " + " < ".join(ln.split()[1].split("+")[0] for ln in f)
    except (OSError, IndexError, TypeError):
        return f"pid {pid}: ?"


def settle(measure, ok, timeout: float, interval: float = 0.1):
    """measure() until ok(value) or timeout; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = measure()
        if ok(v) or time.monotonic() > deadline:
            return v
        time.sleep(interval)


class Watched:
    """A Daemon and every process of its tree seen while it ran (a privileged helper it
    forks included); teardown kills whatever survives, so that the mount can go."""

    def __init__(self, d: Daemon):
        self.d = d
        self.kids: dict[int, int] = {}
        self.conn: int | None = None

    def start(self, timeout: float = 120) -> "Watched":
        self.d.start(timeout)  # a cold build cache (changed sources) takes a while
        self.conn = fuse_conn(self.d.mountpoint)
        self.look()
        return self

    def look(self) -> dict[int, int]:
        if self.d.proc is not None and self.d.proc.poll() is None:
            self.kids.update(descendants(self.d.proc.pid))
        return self.kids

    def pids(self) -> set[int]:
        return {self.d.proc.pid, *self.look()}

    def survivors(self) -> dict[int, int]:
        return {p: st for p, st in self.kids.items() if start_time(p) == st}

    def teardown(self) -> None:
        d = self.d
        if d.proc is not None and d.proc.poll() is None:
            self.look()
            d.proc.send_signal(signal.SIGTERM)
            try:
                d.proc.wait(20)
            except subprocess.TimeoutExpired:
                d.proc.kill()
                d.proc.wait(10)
        for p in self.survivors():
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        if self.conn is not None and fuse_conn(d.mountpoint) is not None:
            # anyone still holding the session keeps it alive: a statfs would then hang
            for p in fuse_holders(self.conn):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
            settle(lambda: fuse_holders(self.conn), lambda s: not s, 5)
        d.stop()


# --- the readers ----------------------------------------------------------------------
#
# A reader is `python -S -c READER MOUNT FILES.json OUT.jsonl SEED STOPFILE MODE SIBLINGS`:
# until STOPFILE exists it opens a random file (of FILES, its own <pid>/ and
# <pid>/task/<tid>/ files, and those of SIBLINGS, other readers that may be killed at any
# time), reads it by random-sized read(2)s and pread(2)s at random offsets, to its end or
# not, and now and then lists a directory or reads the <pid>/fd links. It appends to
# OUT.jsonl its running counts (every 0.5 s, so a killed reader's count is almost whole)
# and every error, one JSON object a line. MODE "warm" first reads every file to its end.

READER = r'''
import errno, json, os, random, stat, sys, time

mp, listfile, outfile, seed, stopfile, mode, siblings = sys.argv[1:8]
rng = random.Random(int(seed))
out = os.open(outfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
st = {"t": "stats", "opens": 0, "reads": 0, "bytes": 0, "eofs": 0, "partial": 0,
      "readlinks": 0, "listdirs": 0, "excused": 0}
last = time.monotonic()


def emit(rec):
    os.write(out, (json.dumps(rec) + "\n").encode())


def progress(force=False):
    global last
    now = time.monotonic()
    if force or now - last > 0.5:
        last = now
        emit(st)


def gone(rel):
    """Whether the process (or thread) a per-process path names has exited."""
    parts = rel.split("/")
    if not parts[0].isdigit():
        return False
    tid = parts[2] if len(parts) > 2 and parts[1] == "task" and parts[2].isdigit() else parts[0]
    for pid in (parts[0], tid):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X"):
                    return True
        except OSError:
            return True
    return False


def proc_refuses(rel, e):
    if e.errno != errno.EACCES:
        return False
    try:
        os.close(os.open("/proc/" + rel, os.O_RDONLY))
    except OSError as pe:
        return pe.errno == errno.EACCES
    return False


def error(rel, what, e):
    if isinstance(e, OSError):
        if e.errno in (errno.ENOENT, errno.ESRCH) and gone(rel):
            st["excused"] += 1
            return
        if proc_refuses(rel, e):
            st["excused"] += 1
            return
        emit({"t": "err", "path": rel, "op": what, "errno": e.errno, "msg": str(e)})
    else:
        emit({"t": "err", "path": rel, "op": what, "errno": None, "msg": str(e)})


def size():
    k = rng.random()
    if k < 0.2:
        return rng.randint(1, 64)
    if k < 0.45:
        return rng.randint(1, 4096)
    if k < 0.9:
        return rng.randint(1, 256 * 1024)
    return 256 * 1024


def own_files():
    me = os.getpid()
    found = []
    dirs = [str(me)] + [f"{me}/task/{t}" for t in os.listdir(f"{mp}/{me}/task")]
    for d in dirs:
        for name in os.listdir(f"{mp}/{d}"):
            if stat.S_ISREG(os.lstat(f"{mp}/{d}/{name}").st_mode):
                found.append(f"{d}/{name}")
    return found


def read_file(rel, to_eof, max_ops):
    """One handle: sequential reads and preads; every byte seen is checked against what
    this handle returned before at the same offset."""
    try:
        fd = os.open(f"{mp}/{rel}", os.O_RDONLY)
    except OSError as e:
        error(rel, "open", e)
        return
    st["opens"] += 1
    known = bytearray()  # bytes [0, len(known)) of this handle's output
    eof = None  # where its output ends, once a short read has shown it
    pos = 0  # the file position: only sequential reads move it
    ops = 0
    what = "read"
    try:
        while to_eof or ops < max_ops:
            ops += 1
            n = size() if ops < 400 else 256 * 1024
            if rng.random() < 0.3:
                span = len(known) + rng.choice((4096, 65536, 2 << 20))
                off = rng.randint(0, len(known)) if rng.random() < 0.5 else rng.randint(0, span)
                what = "pread"
                data = os.pread(fd, n, off)
            else:
                off = pos
                what = "read"
                data = os.read(fd, n)
                pos += len(data)
            st["reads"] += 1
            st["bytes"] += len(data)
            end = off + len(data)
            if len(data) > n:
                raise AssertionError(f"{what} of {n} at {off} returned {len(data)} bytes")
            if data[:max(0, len(known) - off)] != known[off:end]:
                raise AssertionError(f"{what} of {n} at {off}: not what this handle returned "
                                     f"there before")
            if data and eof is not None and end > eof:
                raise AssertionError(f"{what} of {n} at {off}: data past the end at {eof}")
            if off <= len(known) < end:
                known += data[len(known) - off:]
            if len(data) < n and (data or off <= len(known)):
                # a short read is the end (iterfs answers in full until then)
                if end < len(known) or (eof is not None and end != eof):
                    raise AssertionError(f"{what} of {n} at {off} ended at {end}, but "
                                         f"{len(known)} bytes were read (end seen: {eof})")
                eof = end
            elif not data and eof is not None and off < eof:
                raise AssertionError(f"{what} of {n} at {off}: nothing, before the end at {eof}")
            if what == "read" and not data:
                st["eofs"] += 1
                if not rel[0].isdigit() and known and not known.endswith(b"\n"):
                    raise AssertionError(f"ends mid-line at {len(known)}")
                break
            progress()
        else:
            st["partial"] += 1
    except Exception as e:
        error(rel, what, e)
    finally:
        os.close(fd)


def meta(rel_dir):
    try:
        names = os.listdir(f"{mp}/{rel_dir}" if rel_dir else mp)
        st["listdirs"] += 1
    except OSError as e:
        error(rel_dir or ".", "listdir", e)
        return
    if rel_dir.endswith("/fd"):
        for name in names[:8]:
            try:
                os.readlink(f"{mp}/{rel_dir}/{name}")
                st["readlinks"] += 1
            except OSError as e:
                if e.errno == errno.ENOENT:  # closed between the listing and the readlink
                    st["excused"] += 1
                else:
                    error(f"{rel_dir}/{name}", "readlink", e)


files = json.load(open(listfile))
if mode == "warm":  # every file once, to its end, before the random mix
    for rel in files:
        read_file(rel, True, 0)
mine = own_files()
me = str(os.getpid())
files += mine
for sib in siblings.split(",") if siblings else ():  # other readers, killed at any time
    files += [sib + f[len(me):].replace(f"/task/{me}/", f"/task/{sib}/") for f in mine
              if f.count("/") <= 1 or f.startswith(f"{me}/task/{me}/")]
others = sorted({f.split("/")[0] for f in files if f[0].isdigit()})
while not os.path.exists(stopfile):
    k = rng.random()
    if k < 0.05:
        meta(rng.choice(["", f"{os.getpid()}/fd", f"{rng.choice(others)}/task",
                         rng.choice(others)]))
    else:
        read_file(rng.choice(files), rng.random() < 0.5, rng.randint(1, 20))
    progress()
progress(True)
emit({"t": "done"})
'''


class Readers:
    """Reader processes: each appends JSON lines (stats, errors) to its own file."""

    def __init__(self, mountpoint: str, workdir, seed: int):
        self.mp = mountpoint
        self.dir = workdir
        self.rng = random.Random(seed)
        self.listfile = str(workdir / "files.json")
        self.live: dict[int, tuple[subprocess.Popen, str, float]] = {}
        self.outs: list[str] = []
        self.spawned = self.kills = 0
        self.problems: list[str] = []

    def write_files(self, files: list[str]) -> None:
        with open(self.listfile, "w") as f:
            json.dump(files, f)

    def spawn(self, mode: str, stopfile: str) -> subprocess.Popen:
        self.spawned += 1
        out = str(self.dir / f"reader-{self.spawned}.jsonl")
        with open(str(self.dir / f"reader-{self.spawned}.err"), "w") as err:
            p = subprocess.Popen([sys.executable, "-S", "-c", READER, self.mp, self.listfile,
                                  out, str(self.rng.randrange(1 << 30)), stopfile, mode,
                                  ",".join(map(str, self.rng.sample(sorted(self.live),
                                                                    min(4, len(self.live)))))],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        self.live[p.pid] = (p, out, time.monotonic())
        self.outs.append(out)
        return p

    def kill(self, pid: int) -> None:
        p, _, _ = self.live.pop(pid)
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGKILL)
        p.wait(10)

    def reap(self) -> int:
        """Forget readers that exited by themselves (a crash, unless told to stop)."""
        n = 0
        for pid, (p, out, _) in list(self.live.items()):
            if p.poll() is not None:
                del self.live[pid]
                n += 1
                if p.returncode != 0:
                    err = open(out.replace(".jsonl", ".err")).read()
                    self.problems.append(f"reader {pid} exited {p.returncode}: {err[-2000:]}")
        return n

    def stuck(self, now: float) -> list[int]:
        out = []
        for pid, (_, path, started) in self.live.items():
            try:
                seen = os.stat(path).st_mtime - time.time() + now
            except FileNotFoundError:
                seen = 0
            if now - max(started, seen) > HANG:
                out.append(pid)
        return out

    def run(self, seconds: float, mode: str, daemon: "Watched", rng: random.Random) -> dict:
        """READERS readers for `seconds`, one SIGKILLed every 0.5-2 s and replaced; then
        told to stop. Returns the server's peak fd count and RSS meanwhile."""
        d = daemon.d
        stopfile = str(self.dir / f"stop-{time.monotonic_ns()}")
        peak = {"fds": 0, "rss": 0}
        end = time.monotonic() + seconds
        for _ in range(READERS):
            self.spawn(mode, stopfile)
        next_kill = time.monotonic() + rng.uniform(0.5, 2)
        while (now := time.monotonic()) < end:
            time.sleep(0.05)
            assert d.proc.poll() is None, f"the daemon died: {d.output()[-3000:]}"
            for _ in range(self.reap()):
                self.spawn(mode, stopfile)
            for pid in self.stuck(now):
                self.problems.append(f"reader {pid}: no read finished for {HANG}s (a hang?)")
                self.kill(pid)
                self.spawn(mode, stopfile)
            if now >= next_kill:
                self.kill(rng.choice(sorted(self.live)))  # most likely mid-read
                self.kills += 1
                self.spawn(mode, stopfile)
                next_kill = now + rng.uniform(0.5, 2)
                daemon.look()
                peak["fds"] = max(peak["fds"], fd_count(d.proc.pid))
                peak["rss"] = max(peak["rss"], rss_kib(d.proc.pid))
        self.stop(stopfile, 30)
        return peak

    def stop(self, stopfile: str, timeout: float) -> None:
        open(stopfile, "w").close()
        deadline = time.monotonic() + timeout
        while self.live and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.05)
        for pid in list(self.live):
            self.problems.append(f"reader {pid} did not stop within {timeout}s (a hung read?)")
            self.kill(pid)

    def kill_all(self) -> None:
        for pid in list(self.live):
            with contextlib.suppress(Exception):
                self.kill(pid)

    def results(self) -> tuple[dict, list[dict]]:
        totals: dict[str, int] = {}
        errors = []
        for path in self.outs:
            try:
                text = open(path).read()
            except FileNotFoundError:
                continue
            last = None
            for line in text.split("\n")[:-1]:  # a killed reader's torn last line is dropped
                rec = json.loads(line)
                if rec["t"] == "stats":
                    last = rec
                elif rec["t"] == "err":
                    errors.append(rec)
            for k, v in (last or {}).items():
                if k != "t":
                    totals[k] = totals.get(k, 0) + v
        return totals, errors

    def check(self, what: str, seed: int) -> dict:
        totals, errors = self.results()
        assert not errors and not self.problems, (
            f"{what}: {len(errors)} errors (seed {seed}): {errors[:20]}; {self.problems[:10]}")
        return totals


def enumerate_files(mp: str, pids: list[int]) -> list[str]:
    """Every regular file of the catalog, and those of the given process directories
    (<pid>/fd holds symlinks: not files)."""
    out = []
    for d, dirs, files in os.walk(mp):
        if d == mp:
            dirs[:] = [x for x in dirs if not x.isdigit()]
        out += [os.path.relpath(os.path.join(d, f), mp) for f in files]
    for pid in pids:
        for d, dirs, files in os.walk(os.path.join(mp, str(pid))):
            dirs[:] = [x for x in dirs if x != "fd"]
            for f in files:
                p = os.path.join(d, f)
                if stat.S_ISREG(os.lstat(p).st_mode):
                    out.append(os.path.relpath(p, mp))
    return sorted(out)


@pytest.fixture
def daemon(tmp_path):
    w = Watched(Daemon(str(tmp_path / "mnt"), pin_root_for(tmp_path)))
    try:
        yield w.start()
    finally:
        w.teardown()


def test_soak(daemon, tmp_path):
    seed = int(os.environ.get("ITERFS_SOAK_SEED", random.randrange(1 << 30)))
    work = tmp_path / "readers"
    work.mkdir()
    readers = Readers(daemon.d.mountpoint, work, seed)
    sleeper = subprocess.Popen(["sleep", "3600"])
    try:
        _soak(daemon, readers, random.Random(seed), seed, sleeper.pid)
    finally:
        readers.kill_all()
        sleeper.kill()
        sleeper.wait()


def _soak(daemon: Watched, readers: Readers, rng: random.Random, seed: int, sleeper: int):
    d = daemon.d
    mp, pid = d.mountpoint, d.proc.pid
    listed = sorted(int(x) for x in os.listdir(mp) if x.isdigit())
    some = sorted({os.getpid(), pid, sleeper, *listed[:2]})
    files = enumerate_files(mp, some)
    rel = set(files)
    assert {"tasks", "kallsyms", "bpf/maps", "bpf/progs", "bpf/links", "net/tcp"} <= rel
    assert f"{os.getpid()}/status" in rel and f"{os.getpid()}/task/{os.getpid()}/stat" in rel
    readers.write_files(files)

    # warm-up, two passes: one full read of every file here, then each time a concurrent
    # burst (32 readers that each read every file to its end, then mix, killed as in the
    # soak), so that allocator arenas, worker threads and the buffer pool are what serving
    # 32 readers makes them. The server's RSS moves by a few MiB from one such pass to the
    # next with no trend (which arena, which pooled chunk got the last allocations): the
    # baseline is the higher of the two.
    t0 = time.monotonic()
    for f in files:
        with open(os.path.join(mp, f), "rb") as fh:
            while fh.read(256 * 1024):
                pass
    rss_warm = []
    for _ in range(2):
        readers.run(min(6.0, max(3.0, SOAK_SECONDS / 10)), "warm", daemon, rng)
        readers.check("warm-up", seed)
        time.sleep(1)  # what the end gets too: the last releases reach the server
        rss_warm.append(rss_kib(pid))
    warm = time.monotonic() - t0
    readers.outs.clear()
    readers.kills = 0

    fds0, targets0, rss0 = fd_count(pid), fd_targets(pid), max(rss_warm)
    progs = prog_ids(daemon.pids())
    assert progs
    links0 = links_of(progs)
    pinned_links0 = d.link_ids()
    pins0 = pins(d.pin_root)
    assert pins0

    t0 = time.monotonic()
    peak = readers.run(SOAK_SECONDS, "soak", daemon, rng)
    soaked = time.monotonic() - t0
    totals, errors = readers.results()

    # still serving
    assert d.proc.poll() is None, d.output()[-3000:]
    with open(os.path.join(mp, "tasks"), "rb") as f:
        tasks = f.read()
    assert f" {os.getpid()} ".encode() in tasks
    os.listdir(os.path.join(mp, str(os.getpid())))

    # nothing kept: fds, memory, links, pins
    fd_slack = max(2, fds0 * 0.05)
    fds1 = settle(lambda: fd_count(pid), lambda n: n <= fds0, 5)
    rss1 = settle(lambda: rss_kib(pid), lambda n: n <= rss0 * 1.05, 5)
    extra_links = settle(lambda: links_of(progs) - links0, lambda s: not s, 5, 0.2)

    print(f"\nsoak: seed {seed}, {soaked:.1f}s (warm-up {warm:.1f}s), {len(readers.outs)} "
          f"readers started, {readers.kills} killed; {totals.get('opens', 0)} opens, "
          f"{totals.get('reads', 0)} reads, {totals.get('bytes', 0) / 2**20:.1f} MiB, "
          f"{totals.get('eofs', 0)} read to EOF, {totals.get('partial', 0)} closed mid-file, "
          f"{totals.get('listdirs', 0)} listings, {totals.get('readlinks', 0)} readlinks, "
          f"{totals.get('excused', 0)} excused errors (processes gone); {len(errors)} errors\n"
          f"soak: server fds {fds0} -> peak {peak['fds']} -> {fds1}, RSS {rss_warm} KiB -> peak "
          f"{peak['rss']} KiB -> {rss1} KiB ({(rss1 - rss0) * 100 / rss0:+.1f}%), "
          f"{len(files)} files\n"
          f"soak: server fds {fd_diff(targets0, fd_targets(pid))}")

    totals = readers.check("soak", seed)
    assert totals.get("reads", 0) > 1000 and readers.kills > SOAK_SECONDS / 3
    assert fds1 <= fds0 + fd_slack, (
        f"server fds {fds0} -> {fds1}: leaked ({fd_diff(targets0, fd_targets(pid))})")
    assert rss1 <= rss0 * 1.05, f"server RSS {rss0} KiB -> {rss1} KiB: grew more than 5%"
    assert not extra_links, f"links leaked: {extra_links}"
    assert d.link_ids() == pinned_links0
    assert pins(d.pin_root) == pins0
    assert "Traceback" not in d.output(), d.output()[-5000:]

    # a clean stop leaves nothing: no mount, no pins, no links, no process of the daemon
    kids = daemon.look()
    d.signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        d.wait(20)
    assert d.proc.poll() is not None, (
        f"SIGTERM: the daemon hangs in its stop: server {stack(pid)}; "
        f"{'; '.join(stack(k) for k in daemon.survivors())}")
    assert d.proc.returncode == 0, d.output()[-3000:]
    assert mount_state(mp) == ("", "")
    assert not os.path.exists(d.pin_root)
    assert settle(lambda: links_of(progs), lambda s: not s, 5, 0.2) == set()
    assert settle(daemon.survivors, lambda s: not s, 5) == {}, f"left running of {kids}"
