"""Per-namespace views: /run/iterfs/netns/NAME/net/<file> shows that namespace's sockets,
and namespaces that appear or vanish show up or go without a restart."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from daemonhelp import Daemon, pin_root_for

pytestmark = pytest.mark.fuse

PORTS = '''
from iterfs.catalog import IterSpec
from iterfs.dsl.program import Field, IterProgram

def build(btf):
    p = IterProgram("tcp", btf=btf)
    sk = p.ctx_ptr("sk_common")
    p.exit_if_null(sk)
    p.seq_printf("%u\\n", Field(sk, "skc_num"))
    return p.build()

FILES = [IterSpec("net/ports", "tcp", build, netns=True)]
'''

LISTENER = """
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True); sys.stdin.read()
"""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def wait_for(pred, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


def ports(path: str) -> set[int]:
    with open(path) as f:
        return {int(x) for x in f.read().split()}


def test_named_namespace_views(tmp_path):
    cat = tmp_path / "catalog"
    cat.mkdir()
    (cat / "ports.py").write_text(PORTS)
    a, b = f"iterfs-test-{os.getpid()}-a", f"iterfs-test-{os.getpid()}-b"
    mp = str(tmp_path / "mnt")
    ip("netns", "add", a)
    d = Daemon(mp, pin_root_for(tmp_path), "--catalog", str(cat))
    listener = None
    try:
        d.start()
        listener = subprocess.Popen(["ip", "netns", "exec", a, sys.executable, "-c", LISTENER],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        port = int(listener.stdout.readline())
        view_a = os.path.join(mp, "netns", a, "net", "ports")
        assert port in ports(view_a)                            # inside its namespace
        assert port not in ports(os.path.join(mp, "net", "ports"))  # not in the root one
        assert "tasks" not in os.listdir(os.path.join(mp, "netns", a))  # only netns files

        ip("netns", "add", b)                                   # appears without a restart
        view_b = os.path.join(mp, "netns", b, "net", "ports")
        assert wait_for(lambda: os.path.exists(view_b))
        assert port not in ports(view_b)

        listener.kill()
        listener.wait()
        listener = None
        ip("netns", "del", a)                                   # and vanishes
        assert wait_for(lambda: not os.path.exists(os.path.join(mp, "netns", a)))
        assert os.path.exists(view_b)
    finally:
        if listener is not None:
            listener.kill()
            listener.wait()
        d.stop()
        for n in (a, b):
            subprocess.run(["ip", "netns", "del", n], capture_output=True)


@pytest.mark.parametrize("kptr", [0, 1])
def test_namespace_pointers_as_proc_shows_root(tmp_path, kptr):
    """%pK in netns/NAME/net/netlink: what `ip netns exec NAME cat /proc/net/netlink` shows
    root, also with kptr_restrict 1 (real pointers, read by the root helper)."""
    name = f"iterfs-test-{os.getpid()}-k{kptr}"
    ip("netns", "add", name)
    d = Daemon(str(tmp_path / "mnt"), pin_root_for(tmp_path))
    saved = open("/proc/sys/kernel/kptr_restrict").read()
    try:
        d.start()
        with open("/proc/sys/kernel/kptr_restrict", "w") as f:
            f.write(str(kptr))
        ours = open(os.path.join(d.mountpoint, "netns", name, "net", "netlink"), "rb").read()
        theirs = subprocess.run(["ip", "netns", "exec", name, "cat", "/proc/net/netlink"],
                                capture_output=True, check=True).stdout
        assert ours == theirs
        assert any(not line.startswith(b"0000000000000000") for line in ours.splitlines()[1:])
    finally:
        with open("/proc/sys/kernel/kptr_restrict", "w") as f:
            f.write(saved)
        d.stop()
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
