"""The command line on the real machine: bad input gets one line, a non-zero exit, and
leaves nothing behind; bad catalog modules are skipped by name; the systemd unit verifies."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from daemonhelp import Daemon, iterfs_cmd, pin_root_for, run_cli
from iterfs.daemon import mount_state

pytestmark = pytest.mark.fuse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_line_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    err = r.stderr.strip()
    assert "Traceback" not in r.stderr and len(err.splitlines()) == 1, r.stderr
    assert err.startswith("iterfs: ")
    for n in needles:
        assert n in err, err


def nothing_left(mp: str, pin_root: str) -> None:
    assert mount_state(mp) == ("", "")
    assert not os.path.exists(pin_root)


@pytest.fixture
def paths(tmp_path):
    mp, pins = str(tmp_path / "mnt"), pin_root_for(tmp_path)
    yield mp, pins
    if mount_state(mp)[0]:
        subprocess.run(["fusermount3", "-u", "-z", mp])
    shutil.rmtree(pins, ignore_errors=True)


def test_start_without_capabilities(paths):
    mp, pins = paths
    r = subprocess.run(["setpriv", "--bounding-set", "-bpf,-perfmon,-sys_admin", "--",
                        *iterfs_cmd("mount", mp, "--pin-root", pins)],
                       capture_output=True, text=True, timeout=60)
    one_line_error(r, "lacks CAP_BPF, CAP_PERFMON", "run it as root")
    nothing_left(mp, pins)


def test_missing_btf_file(paths):
    mp, pins = paths
    r = run_cli("mount", mp, "--pin-root", pins, "--btf", "/nonexistent/vmlinux")
    one_line_error(r, "/nonexistent/vmlinux", "CONFIG_DEBUG_INFO_BTF")
    nothing_left(mp, pins)


def test_malformed_btf_file(paths, tmp_path):
    mp, pins = paths
    bad = tmp_path / "bad.btf"
    bad.write_bytes(b"\x9f\xeb\x01\x00" + b"\xff" * 40)
    r = run_cli("mount", mp, "--pin-root", pins, "--btf", str(bad))
    one_line_error(r, "header")
    nothing_left(mp, pins)


def test_nonempty_mountpoint(paths):
    mp, pins = paths
    os.makedirs(mp)
    open(os.path.join(mp, "precious"), "w").close()
    r = run_cli("mount", mp, "--pin-root", pins)
    one_line_error(r, "not empty")
    assert os.listdir(mp) == ["precious"]
    assert not os.path.exists(pins)


def test_unknown_commands_and_paths():
    one_line_error(run_cli("cat", "no/such/file"), "no catalog file 'no/such/file'")
    one_line_error(run_cli("disasm", "nope"), "iterfs ls")
    one_line_error(run_cli("umount", "/nonexistent-mp"), "nothing is mounted")
    one_line_error(run_cli("ls", "--catalog", "/nonexistent-dir"), "does not exist")
    r = run_cli("frobnicate")
    assert r.returncode == 2 and "invalid choice" in r.stderr


UNKNOWN_TARGET = '''
from iterfs.catalog import IterSpec
from iterfs.dsl.program import IterProgram
def build(btf):
    return IterProgram("task", btf=btf).build()
FILES = [IterSpec("odd/thing", "no_such_target", build)]
'''

REJECTED = '''
from iterfs import asm
from iterfs.catalog import IterSpec
from iterfs.dsl.program import IterProgram
def build(btf):
    p = IterProgram("task", btf=btf)
    t = p.ctx_ptr("task")
    p.emit(asm.ldx("w", "r0", t, 0))   # no NULL check: the verifier refuses
    return p.build()
FILES = [IterSpec("odd/rejected", "task", build)]
'''

BROKEN = "this is not python(\n"


@pytest.fixture
def bad_catalog(tmp_path):
    d = tmp_path / "catalog"
    d.mkdir()
    (d / "unknown.py").write_text(UNKNOWN_TARGET)
    (d / "rejected.py").write_text(REJECTED)
    (d / "broken.py").write_text(BROKEN)
    (d / "nofiles.py").write_text("X = 1\n")
    return str(d)


def test_ls_reports_bad_modules(bad_catalog):
    r = run_cli("ls", "--catalog", bad_catalog)
    assert r.returncode == 0, r.stderr
    rows = {ln.split()[0]: ln for ln in r.stdout.splitlines()}
    assert "unsupported: no iterator target 'no_such_target'" in rows["odd/thing"]
    assert "broken: SyntaxError" in rows[f"({bad_catalog}/broken.py)"]
    assert "declares no FILES" in rows[f"({bad_catalog}/nofiles.py)"]
    assert rows["tasks"].endswith("iterator")


def test_mount_skips_bad_modules_and_serves_the_rest(paths, bad_catalog):
    mp, pins = paths
    d = Daemon(mp, pins, "--catalog", bad_catalog).start()
    try:
        assert "tasks" in os.listdir(mp) and "odd" not in os.listdir(mp)
        assert open(os.path.join(mp, "tasks")).readline().startswith("   TGID")
        log = d.output()
        assert "odd/thing unsupported: no iterator target 'no_such_target'" in log
        assert "odd/rejected" in log and "verifier rejected" in log and "invalid mem access" in log
        assert "broken.py skipped: SyntaxError" in log
        assert "Traceback" not in log
    finally:
        d.stop()
    nothing_left(mp, pins)


def test_systemd_unit_verifies_without_warnings():
    unit = os.path.join(ROOT, "systemd", "iterfs.service")
    r = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stdout + r.stderr
    text = open(unit).read()
    for need in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
                 "ExecStart=/usr/local/bin/iterfs mount /run/iterfs"):
        assert need in text
    for hides_the_mount in ("PrivateTmp", "ProtectSystem", "ProtectHome", "PrivateDevices",
                            "PrivateMounts", "TemporaryFileSystem"):
        assert f"\n{hides_the_mount}=" not in text
