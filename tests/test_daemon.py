"""The daemon on a real FUSE mount: reads, /proc agreement, concurrency, signals, bad input."""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import stat
import subprocess
import time

import pytest

import procfs
from daemonhelp import Daemon, parse_tasks, pin_root_for, run_cli, wait_gone
from iterfs import syscall
from iterfs.daemon import mount_state

pytestmark = pytest.mark.fuse



@pytest.fixture
def mounted(tmp_path):
    mp = str(tmp_path / "mnt")
    d = Daemon(mp, pin_root_for(tmp_path))
    try:
        yield d.start()
    finally:
        d.stop()


PF_WQ_WORKER = 0x20


def proc_task(tid: int):
    """(tgid, ppid, uid, state, comm, flags) as /proc/<tid>/stat and status print them."""
    st, s = procfs.stat(tid), procfs.status(tid)
    return (int(s["Tgid"]), int(st[3]), int(s["Uid"].split()[0]), st[2], st[1].encode(), int(st[8]))


def snapshot() -> dict[int, tuple]:
    out = {}
    for tid in procfs.tids():
        try:
            t = proc_task(tid)
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[tid] = t[:3] + t[4:]  # the state letter of a running thread changes all the time
    return out


def same_name(ours: bytes, proc: bytes, flags: int) -> bool:
    """Equal, except the "+desc"/"-desc" a workqueue worker shows: the work item it ran last,
    which changes between two reads of /proc itself."""
    if ours == proc:
        return True
    if not flags & PF_WQ_WORKER:
        return False
    return re.split(rb"[-+]", ours, 1)[0] == re.split(rb"[-+]", proc, 1)[0]


def every_file(root: str) -> list[str]:
    """The catalog's own files (process directories have their own tests)."""
    out = []
    for d, dirs, files in os.walk(root):
        if d == root:
            dirs[:] = [x for x in dirs if not x.isdigit()]
        out += [os.path.join(d, f) for f in files]
    return sorted(out)


def read_all_ways(f: str) -> list[bytes]:
    """The same file by cat, Python read(), pread at odd offsets and 1-byte reads; each
    read of one open handle is checked against that handle's own whole output."""
    outs = [subprocess.run(["cat", f], capture_output=True, check=True).stdout]
    with open(f, "rb") as fh:
        outs.append(fh.read())
    fd = os.open(f, os.O_RDONLY)
    try:
        whole = b""
        while chunk := os.pread(fd, 65536, len(whole)):
            whole += chunk
        for off in (1, 7, 333, len(whole) // 3, max(len(whole) - 5, 0)):
            assert os.pread(fd, 11, off) == whole[off:off + 11]
        assert os.pread(fd, 10, len(whole) + 100) == b""
        outs.append(whole)
    finally:
        os.close(fd)
    with open(f, "rb", buffering=0) as fh:  # 1-byte reads: the first 64 KiB, then the rest
        head = b"".join(iter(lambda: fh.read(1) if fh.tell() < 65536 else b"", b""))
        outs.append(head + fh.read())
    return outs


def test_every_way_of_reading(mounted):
    # the per-process programs load after READY; a process file waits for them, so after
    # this read nothing creates BPF objects any more
    open(os.path.join(mounted.mountpoint, str(os.getpid()), "stat"), "rb").read()
    files = every_file(mounted.mountpoint)
    rel = {os.path.relpath(f, mounted.mountpoint) for f in files}
    assert {"tasks", "bpf/maps", "bpf/progs", "bpf/links"} <= rel
    for f in files:
        st = os.stat(f)
        assert st.st_size == 0 and stat.S_ISREG(st.st_mode) and not st.st_mode & 0o222
        outs = read_all_ways(f)
        if f.endswith("/tasks"):
            for o in outs:
                parse_tasks(o)
        elif "/bpf/" in f:  # nothing creates BPF objects meanwhile: four equal reads
            assert all(o == outs[0] for o in outs), f
        for o in outs:  # whole lines, whatever changed between the sessions
            assert o.endswith(b"\n") or o == b"", f
    tasks = os.path.join(mounted.mountpoint, "tasks")
    assert subprocess.run(["head", "-c", "5", tasks], capture_output=True).stdout == b"   TG"
    assert subprocess.run(["tail", "-n", "1", tasks], capture_output=True).stdout.endswith(b"\n")


def test_tasks_match_proc(mounted, tmp_path):
    sleeper = subprocess.Popen(["sleep", "60"])
    stopped = subprocess.Popen(["sleep", "60"])
    zombie = subprocess.Popen(["true"])
    try:
        os.kill(stopped.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (
                procfs.stat(zombie.pid)[2] == "Z" and procfs.stat(stopped.pid)[2] == "T"
                and procfs.stat(sleeper.pid)[2] == "S"):
            time.sleep(0.02)
        before = snapshot()
        rows = parse_tasks(open(os.path.join(mounted.mountpoint, "tasks"), "rb").read())
        after = snapshot()
        hidden = procfs.hidden_tids()
        assert (set(before) & set(after)) - hidden <= set(rows) <= (set(before) | set(after)) - hidden
        assert rows[sleeper.pid][3] == "S" and rows[stopped.pid][3] == "T"
        assert rows[zombie.pid][3] == "Z"
        compared = 0
        for tid, row in rows.items():
            # a thread that changed between two reads of /proc itself (exec, reparenting,
            # renaming) proves nothing either way; the daemon's own threads rename themselves
            if before.get(tid) != after.get(tid) or tid not in after or row[0] == mounted.proc.pid:
                continue
            want = after[tid]
            assert row[:3] == want[:3] and same_name(row[4], want[3], want[4]), (tid, row, want)
            compared += 1
        assert compared > 20
    finally:
        os.kill(stopped.pid, signal.SIGKILL)
        for p in (sleeper, stopped):
            p.kill()
            p.wait()
        zombie.wait()


def test_32_concurrent_readers(mounted):
    f = os.path.join(mounted.mountpoint, "tasks")

    def read(_):
        with open(f, "rb") as fh:
            return parse_tasks(fh.read())

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        before = procfs.tids()
        results = list(pool.map(read, range(32)))
        stable = before & procfs.tids() - procfs.hidden_tids()
    for r in results:  # complete: every thread alive throughout is in every reader's output
        assert stable <= set(r)


def test_cli_cat_matches_the_mount(mounted):
    r = run_cli("cat", "tasks")
    assert r.returncode == 0, r.stderr
    via_cli = parse_tasks(r.stdout.encode())
    via_fuse = parse_tasks(open(os.path.join(mounted.mountpoint, "tasks"), "rb").read())
    assert set(via_cli) & set(via_fuse) >= (set(via_cli) | set(via_fuse)) - set(range(os.getpid(), 1 << 22))


def test_pins_mirror_the_tree(mounted):
    pinned = os.path.join(mounted.pin_root, "tasks")
    assert os.path.exists(pinned)
    with open(pinned, "rb") as fh:
        parse_tasks(fh.read())


def test_sigterm_leaves_nothing(tmp_path):
    mp = str(tmp_path / "mnt")
    d = Daemon(mp, pin_root_for(tmp_path)).start()
    try:
        links = d.link_ids()
        assert links
        d.signal(signal.SIGTERM)
        assert d.wait() == 0
        assert mount_state(mp) == ("", "")
        assert not os.path.exists(d.pin_root)
        assert not links & set(syscall.ids("link"))
        assert "Traceback" not in d.output()
    finally:
        d.stop()


def test_sigkill_of_the_server_helper_unmounts_and_unpins(tmp_path):
    """The helper holds no FUSE fd: the server's death aborts the connection, and the
    helper clears the mount and the pins, then exits; a new start needs nothing cleared."""
    mp = str(tmp_path / "mnt")
    root = pin_root_for(tmp_path)
    d = Daemon(mp, root).start()
    d2 = Daemon(mp, root)
    try:
        helper = d.helper_pid()
        assert helper is not None
        links = d.link_ids()
        d.signal(signal.SIGKILL)
        d.wait()
        assert wait_gone(helper, 5)
        assert mount_state(mp) == ("", "")
        assert os.listdir(mp) == []
        assert not os.path.exists(root)
        assert not links & set(syscall.ids("link"))
        d2.start()
        assert "stale mount" not in d2.output()
        parse_tasks(open(os.path.join(mp, "tasks"), "rb").read())
    finally:
        d.stop()
        d2.stop()


def test_sigkill_of_both_then_restart_recovers(tmp_path):
    """Server and helper both killed (systemd's final SIGKILL): the mount is left stale;
    readers get ENOTCONN, and the next start clears it."""
    mp = str(tmp_path / "mnt")
    root = pin_root_for(tmp_path)
    d = Daemon(mp, root).start()
    d2 = Daemon(mp, root)
    try:
        os.kill(d.helper_pid(), signal.SIGKILL)
        d.signal(signal.SIGKILL)
        d.wait()
        assert mount_state(mp)[1] == "stale"
        with pytest.raises(OSError) as e:
            os.listdir(mp)
        assert e.value.errno == 107  # ENOTCONN, never a hang
        d2.start()
        assert "stale mount" in d2.output()
        parse_tasks(open(os.path.join(mp, "tasks"), "rb").read())
    finally:
        d.stop()
        d2.stop()


EXTRA = '''
from iterfs.catalog import IterSpec
from iterfs.dsl.program import Field, IterProgram

def build(btf):
    p = IterProgram("task", btf=btf)
    t = p.ctx_ptr("task")
    p.exit_if_null(t)
    p.seq_printf("{fmt}", Field(t, "pid"))
    return p.build()

FILES = [IterSpec("extra/pids", "task", build)]
'''


def test_sighup_reloads_a_changed_module(tmp_path):
    cat_dir = tmp_path / "catalog"
    cat_dir.mkdir()
    (cat_dir / "extra.py").write_text(EXTRA.replace("{fmt}", "v1 %d\\n"))
    mp = str(tmp_path / "mnt")
    d = Daemon(mp, pin_root_for(tmp_path), "--catalog", str(cat_dir)).start()
    try:
        f = os.path.join(mp, "extra", "pids")
        assert open(f).readline().startswith("v1 ")
        ino = os.stat(f).st_ino
        links = d.link_ids()
        held = open(f, "rb")  # a reader in the middle of a session keeps its own output
        (cat_dir / "extra.py").write_text(EXTRA.replace("{fmt}", "v2 %d\\n"))
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not open(f).readline().startswith("v2 "):
            time.sleep(0.1)
        assert open(f).readline().startswith("v2 ")
        assert held.read().startswith(b"v1 ")
        held.close()
        assert os.stat(f).st_ino == ino
        assert d.link_ids() == links  # same links: the program was swapped by BPF_LINK_UPDATE
        assert mount_state(mp)[1] == "live"
    finally:
        d.stop()


def test_busy_mountpoint_is_refused(mounted, tmp_path):
    r = run_cli("mount", mounted.mountpoint, "--pin-root", mounted.pin_root + "-2")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "busy" in r.stderr and "Traceback" not in r.stderr
    assert not os.path.exists(mounted.pin_root + "-2")
    parse_tasks(open(os.path.join(mounted.mountpoint, "tasks"), "rb").read())


def test_doctor_passes_here():
    r = run_cli("doctor")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all checks passed" in r.stdout
