"""Real /proc clients pointed at the mount: psutil (PROCFS_PATH) and iproute2 ss (PROC_ROOT)
get what they get from /proc."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from daemonhelp import public_mount

pytestmark = pytest.mark.fuse

KINDS = ("inet", "inet4", "inet6", "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "unix")

PSUTIL = """
import json, sys, psutil
psutil.PROCFS_PATH = sys.argv[1]
out = {}
for kind in sys.argv[2:]:
    out[kind] = sorted(repr(tuple(c)) for c in psutil.net_connections(kind))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def mount(tmp_path_factory):
    with public_mount(tmp_path_factory.mktemp("clients"), "--passthrough", "/proc") as d:
        yield d


@pytest.fixture(scope="module")
def sockets():
    """A quiet set of sockets of several kinds, held for the module."""
    keep = []
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen()
    c = socket.create_connection(ls.getsockname())
    s, _ = ls.accept()
    l6 = socket.socket(socket.AF_INET6)
    l6.bind(("::1", 0))
    l6.listen()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    u6.bind(("::1", 0))
    a, b = socket.socketpair()
    keep += [ls, c, s, l6, u, u6, a, b]
    yield keep
    for x in keep:
        x.close()


def served(mount, *names: str) -> None:
    for n in names:
        if not os.path.exists(os.path.join(mount.mountpoint, "net", n)):
            pytest.fail(f"the mount serves no net/{n}: its catalog module failed to load")


def psutil_conns(root: str) -> dict:
    import json
    r = subprocess.run([sys.executable, "-c", PSUTIL, root, *KINDS], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_psutil_net_connections(mount, sockets):
    served(mount, "tcp", "tcp6", "udp", "udp6", "unix")
    for _ in range(3):  # sockets of other processes may come and go between the two runs
        before, ours, after = psutil_conns("/proc"), psutil_conns(mount.mountpoint), psutil_conns("/proc")
        if before == after:
            break
    assert before == after, "/proc itself kept changing"
    for kind in KINDS:
        assert ours[kind] == before[kind], kind
    assert any(str(sockets[0].getsockname()[1]) in c for c in ours["tcp4"])


def ss(root: str, *args: str) -> str:
    r = subprocess.run(["ss", *args], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PROC_ROOT=root))
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("args", [("-tan",), ("-uan",), ("-xan",), ("-A", "netlink", "-an")])
def test_ss_reads_the_mount_like_proc(mount, sockets, args):
    served(mount, "tcp", "tcp6", "udp", "udp6", "unix", "netlink")
    for _ in range(3):
        before, ours, after = ss("/proc", *args), ss(mount.mountpoint, *args), ss("/proc", *args)
        if before == after:
            break
    assert before == after, "/proc itself kept changing"
    assert ours == before
