"""psutil walking the mount as /proc (PROCFS_PATH, with --passthrough /proc for what iterfs
does not serve) returns what it returns on the kernel's /proc."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from daemonhelp import public_mount

pytestmark = pytest.mark.fuse

# One psutil run: per pid the values of every method the issue names, or the exception name.
PROBE = r"""
import json, sys, psutil
psutil.PROCFS_PATH = sys.argv[1]
wanted = [int(p) for p in sys.argv[2:]]
def val(f):
    try:
        return f()
    except Exception as e:
        return type(e).__name__
out = {"pids": sorted(psutil.pids())}
for pid in wanted:
    try:
        p = psutil.Process(pid)
    except psutil.Error as e:
        out[pid] = type(e).__name__
        continue
    out[pid] = {
        "name": val(p.name), "ppid": val(p.ppid), "status": val(p.status),
        "num_threads": val(p.num_threads), "uids": val(lambda: list(p.uids())),
        "gids": val(lambda: list(p.gids())), "create_time": val(p.create_time),
        "memory_maps": val(lambda: sorted(m.path for m in p.memory_maps())),
        "open_files": val(lambda: sorted((f.path, f.fd) for f in p.open_files())),
        "connections": val(lambda: sorted(repr(tuple(c)) for c in p.net_connections("all"))),
        "cmdline": val(p.cmdline),
    }
print(json.dumps(out, default=str))
"""

HOLDER = """
import socket, sys, threading
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
f = open(sys.argv[1])
for _ in range(2): threading.Thread(target=sys.stdin.read, daemon=True).start()
print("ready", flush=True); sys.stdin.read()
"""


def kworker_stable(info):
    """A kworker's name ends with the workqueue of the work it last ran ("-events"), which
    changes at any moment: compare the part before it."""
    if isinstance(info, dict) and str(info.get("name", "")).startswith("kworker/"):
        return {**info, "name": info["name"].split("-", 1)[0]}
    return info


@pytest.fixture(scope="module")
def mount(tmp_path_factory):
    with public_mount(tmp_path_factory.mktemp("psutil"), "--passthrough", "/proc") as d:
        yield d


def probe(root: str, pids: list[int]) -> dict:
    r = subprocess.run([sys.executable, "-c", PROBE, root, *map(str, pids)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_psutil_sees_the_same_processes(mount, tmp_path):
    held = tmp_path / "held"
    held.write_text("x")
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(held)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())  # every process
        for _ in range(3):
            before, ours, after = probe("/proc", pids), probe(mount.mountpoint, pids), probe("/proc", pids)
            if before == after:
                break
        compared = 0
        daemon = {mount.proc.pid, mount.helper_pid()}
        for pid in pids:
            k = str(pid)
            if before[k] != after[k] or isinstance(before[k], str) or pid in daemon:
                continue  # /proc itself changed between its two reads, the process is gone,
                # or it is the daemon (server or helper), which runs while it serves this probe
            assert kworker_stable(ours[k]) == kworker_stable(before[k]), (pid, ours[k], before[k])
            compared += 1
        assert compared > len(pids) // 2
        assert ours[str(child.pid)]["num_threads"] == 3
        assert ours[str(child.pid)]["connections"] and ours[str(child.pid)]["open_files"]
        # pids(): /proc's, less what this kernel's task iterator never shows (pid 1's group)
        assert set(before["pids"]) & set(after["pids"]) - {1} <= set(ours["pids"])
    finally:
        child.kill()
        child.wait()
