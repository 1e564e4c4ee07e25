"""Bad input to the command line, as one table: every row runs `iterfs ...` in a subprocess
and expects a non-zero exit, exactly one stderr line "iterfs: <the problem> ... <what to do>"
(no traceback anywhere), and nothing left behind: no mount on the test mountpoint, no pins
under the test pin root, no process of the run still alive, the mountpoint's (and any
other given path's) previous content untouched, no BPF link of the run's programs.

Rows that fail because of argparse (a bad choice, an unknown command) expect argparse's
exit code 2 and its usage text: only the last line, argparse's own, is checked, and no
traceback. One row (a bad $ITERFS_CACHE) expects one warning line before the error: a
cache that cannot be used is reported and skipped, never fatal.

Catalog modules are tiny and loaded with --no-builtin, so a row costs one interpreter start;
their programs are named badin_* so that their links can be told from other processes'."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import uuid
from typing import Callable

import pytest

from daemonhelp import BPFFS, iterfs_cmd, pin_root_for
from iterfs import syscall
from iterfs.daemon import mount_state

pytestmark = pytest.mark.fuse

TIMEOUT = 20  # a row that mounts after all would serve until killed
TOKEN_VAR = "ITERFS_BAD_INPUT_RUN"
PROG_PREFIX = "badin_"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]

# --- catalog modules -----------------------------------------------------------------------

OK = f'''
from iterfs.catalog import IterSpec
from iterfs.dsl.program import Field, IterProgram
def build(btf):
    p = IterProgram("task", btf=btf, name="{PROG_PREFIX}ok")
    t = p.ctx_ptr("task")
    p.exit_if_null(t)
    p.seq_printf("%d\\n", Field(t, "pid"))
    return p.build()
FILES = [IterSpec("pids", "task", build)]
'''

REJECTED = f'''
from iterfs import asm
from iterfs.catalog import IterSpec
from iterfs.dsl.program import IterProgram
def build(btf):
    p = IterProgram("task", btf=btf, name="{PROG_PREFIX}rejected")
    t = p.ctx_ptr("task")
    p.emit(asm.ldx("w", "r0", t, 0))   # ctx->task without the NULL check: refused
    return p.build()
FILES = [IterSpec("odd/rejected", "task", build)]
'''


def target_module(path: str, target: str) -> str:
    return f'''
from iterfs.catalog import IterSpec
from iterfs.dsl.program import IterProgram
def build(btf):
    return IterProgram("task", btf=btf, name="{PROG_PREFIX}target").build()
FILES = [IterSpec("{path}", "{target}", build)]
'''


SYNTAX = "this is not python(\n"
NO_FILES = "X = 1\n"
RAISES = "raise RuntimeError('boom at import')\n"
EXITS = "import sys\nsys.exit(0)\n"


# --- the world a row runs in -----------------------------------------------------------------

class World:
    """A mountpoint (empty directory), a pin root under bpffs (absent), catalogs on demand,
    and the paths whose content must survive the run."""

    def __init__(self, tmp_path):
        self.tmp = str(tmp_path)
        self.mp = os.path.join(self.tmp, "mnt")
        os.mkdir(self.mp)
        self.pins = pin_root_for(tmp_path)
        self.keep: list[str] = []  # besides mp
        self.env: dict[str, str] = {}
        self.cleanups: list[Callable[[], None]] = []
        self._n = 0

    def path(self, name: str) -> str:
        return os.path.join(self.tmp, name)

    def write(self, name: str, data: bytes | str) -> str:
        p = self.path(name)
        with open(p, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        return p

    def catalog(self, **modules: str) -> str:
        self._n += 1
        d = self.path(f"catalog{self._n}")
        os.mkdir(d)
        for name, src in modules.items():
            with open(os.path.join(d, f"{name}.py"), "w") as f:
                f.write(src)
        return d

    def mount_tmpfs(self) -> None:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "badinput", self.mp], check=True)
        self.cleanups.append(lambda: subprocess.run(["umount", "-l", self.mp], capture_output=True))
        self.write("mnt/precious", "on the tmpfs\n")

    def close(self) -> None:
        for f in reversed(self.cleanups):
            with contextlib.suppress(Exception):
                f()
        if mount_state(self.mp)[0] == "iterfs":
            subprocess.run(["fusermount3", "-u", "-z", self.mp], capture_output=True)
        shutil.rmtree(self.pins, ignore_errors=True)


def mounts_at(path: str) -> list[str]:
    """mountinfo entries (fs type and source) on path, in order."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == path:
                sep = fields.index("-")
                out.append(" ".join(fields[sep + 1:sep + 3]))
    return out


def snapshot(path: str):
    """Everything about path's content: type, mode, bytes, recursively."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if os.path.isdir(path) and not os.path.islink(path):
        return ("dir", st.st_mode, {n: snapshot(os.path.join(path, n))
                                    for n in sorted(os.listdir(path))})
    with open(path, "rb") as f:
        return ("file", st.st_mode, f.read())


def our_objects() -> set[str]:
    """This file's programs (badin_*) and the links that run them: none may outlive a run
    (other processes' objects come and go meanwhile: they are not looked at)."""
    progs = set()
    for prog_id in syscall.ids("prog"):
        with contextlib.suppress(OSError), syscall.get_fd_by_id("prog", prog_id) as fd:
            if syscall.prog_info(fd.fd).name.decode().startswith(PROG_PREFIX):
                progs.add(prog_id)
    out = {f"prog {p}" for p in progs}
    for link_id in syscall.ids("link"):
        with contextlib.suppress(OSError), syscall.get_fd_by_id("link", link_id) as fd:
            if syscall.link_info(fd.fd)[0].prog_id in progs:
                out.add(f"link {link_id}")
    return out


def processes_with(token: str) -> list[int]:
    """Live processes whose environment carries this run's token (the run's whole tree,
    whatever it forked, setsid'd or double-forked)."""
    needle = f"{TOKEN_VAR}={token}".encode()
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError):
                with open(f"/proc/{d}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        pids.append(int(d))
    return pids


# --- the table ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    argv: Callable[[World], list[str]]  # the command line, built in the row's world
    expect: str                 # names the problem: a distinctive part of the error line
    todo: str = ""              # says what to do: another part of it
    setup: Callable[[World], None] | None = None
    code: int = 1
    argparse: bool = False      # argparse's error: exit 2 after its usage text
    warn: str = ""              # one warning line expected before the error


def mount(w: World, *extra: str, catalog: str | None = None, pins: str | None = None) -> list[str]:
    """`iterfs mount` of the row's mountpoint and pin root, only the given catalog (one
    valid file by default)."""
    cat = catalog if catalog is not None else w.catalog(ok=OK)
    return iterfs_cmd("mount", w.mp, "--pin-root", pins or w.pins, "--no-builtin",
                      "--catalog", cat, *extra)


def cli(*args: str) -> Callable[[World], list[str]]:
    return lambda w: iterfs_cmd(*args)


def in_private_mount_ns(script: str, argv: list[str]) -> list[str]:
    """argv run by `sh -c script` ("$@" is argv) in a private mount namespace."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-ec", script, "sh", *argv]


def set_mp(w: World, path: str) -> None:
    w.mp = path


def mp_not_empty(w: World) -> None:
    w.write("mnt/precious", "keep me\n")


def mp_is_file(w: World) -> None:
    os.rmdir(w.mp)
    w.write("mnt", "a file, not a directory\n")


def pins_elsewhere(w: World) -> None:
    """A pin root on the ordinary filesystem, holding somebody's files."""
    w.pins = w.path("not-bpffs")
    os.makedirs(os.path.join(w.pins, "sub"))
    w.write("not-bpffs/notes.txt", "precious\n")
    w.write("not-bpffs/sub/data", "precious too\n")
    w.keep.append(w.pins)


def vmlinux_head(n: int) -> bytes:
    with open("/sys/kernel/btf/vmlinux", "rb") as f:
        return f.read(n)


def bpffs_marker(w: World) -> None:
    """A directory in the machine's bpffs that the row's own bpffs must not show."""
    marker = os.path.basename(w.pins) + "-marker"
    os.mkdir(os.path.join(BPFFS, marker))
    w.cleanups.append(lambda: os.rmdir(os.path.join(BPFFS, marker)))
    w.env["MARKER"] = marker


def bad_cache(w: World) -> None:
    w.env["ITERFS_CACHE"] = w.write("cache-is-a-file", "not a directory\n")
    w.keep.append(w.env["ITERFS_CACHE"])


# A bpffs of the row's own (a new instance, in a private mount namespace: the machine's
# pins are never in reach; the marker the test made in the machine's bpffs must not be
# seen), where a decoy directory stands for other tools' pins.
DECOY = ('mount -t bpf bpf /sys/fs/bpf; [ ! -e "/sys/fs/bpf/$MARKER" ]; mkdir /sys/fs/bpf/decoy; '
         'rc=0; "$@" || rc=$?; '
         '[ -d /sys/fs/bpf/decoy ] || echo "test: the bpffs decoy was deleted" >&2; exit $rc')
# no bpffs, and no right to mount one: CAP_BPF and CAP_PERFMON but not CAP_SYS_ADMIN
NO_BPFFS = ('umount /sys/fs/bpf; exec setpriv --bounding-set -sys_admin --inh-caps -sys_admin '
            '-- "$@"')

CASES = [
    # --- who runs it
    Case("mount-as-nobody", lambda w: NOBODY + mount(w),
         "lacks CAP_BPF, CAP_PERFMON", "run it as root"),
    Case("mount-unknown-user", lambda w: mount(w, "--user", "no-such-user-xyz"),
         "--user no-such-user-xyz: no such user", "useradd"),
    # --- BTF
    Case("btf-missing", lambda w: mount(w, "--btf", w.path("nonexistent")),
         "no BTF file at", "give the path of a raw BTF file"),
    Case("btf-directory", lambda w: mount(w, "--btf", w.tmp),
         "cannot read BTF from", "give a raw BTF file"),
    Case("btf-garbage", lambda w: mount(w, "--btf", w.write("garbage.btf", os.urandom(4096))),
         "is not usable BTF (header: bad magic", "give a complete raw BTF file"),
    Case("btf-truncated-vmlinux",
         lambda w: mount(w, "--btf", w.write("truncated.btf", vmlinux_head(65536))),
         "truncated.btf is not usable BTF (header: type section", "give a complete raw BTF file"),
    # --- the kernel refuses a program
    Case("verifier-rejects-mount", lambda w: mount(w, catalog=w.catalog(rejected=REJECTED)),
         "R7 invalid mem access", "fix the program"),
    Case("verifier-rejects-cat",
         lambda w: iterfs_cmd("cat", "odd/rejected", "--no-builtin", "--catalog",
                              w.catalog(rejected=REJECTED)),
         "the verifier rejected badin_rejected: ", "fix the program"),
    Case("unknown-target-mount",
         lambda w: mount(w, catalog=w.catalog(unknown=target_module("odd/thing", "no_such_target"))),
         "no iterator target 'no_such_target'", "iterfs doctor lists the targets"),
    Case("unknown-target-cat",
         lambda w: iterfs_cmd("cat", "odd/typo", "--no-builtin", "--catalog",
                              w.catalog(typo=target_module("odd/typo", "tcpp"))),
         "odd/typo is not supported here: no iterator target 'tcpp'", "did you mean 'tcp'?"),
    # --- the mountpoint
    Case("mountpoint-busy-tmpfs", lambda w: mount(w), "is busy: a tmpfs filesystem is mounted there",
         "choose another mountpoint", setup=World.mount_tmpfs),
    Case("mountpoint-not-empty", lambda w: mount(w), "is not empty", "choose an empty directory",
         setup=mp_not_empty),
    Case("mountpoint-is-a-file", lambda w: mount(w), "is not a directory",
         "choose an empty directory", setup=mp_is_file),
    Case("mountpoint-uncreatable", lambda w: mount(w), "cannot create the mountpoint",
         "choose an existing empty directory",
         setup=lambda w: set_mp(w, "/proc/iterfs-bad-input-test/mnt")),
    # --- bpffs and the pin root
    Case("no-bpffs-no-cap-sys-admin", lambda w: in_private_mount_ns(NO_BPFFS, mount(w)),
         "no bpffs at /sys/fs/bpf, and mounting one failed: Operation not permitted",
         "mount -t bpf bpf /sys/fs/bpf"),
    Case("pin-root-not-on-bpffs", lambda w: mount(w), "is not on a bpf filesystem",
         "a directory of its own under /sys/fs/bpf", setup=pins_elsewhere),
    Case("pin-root-is-bpffs-root",
         lambda w: in_private_mount_ns(DECOY, mount(w, catalog=w.catalog(rejected=REJECTED),
                                                    pins="/sys/fs/bpf")),
         "is the root of a bpf filesystem", "give iterfs a directory of its own",
         setup=bpffs_marker),
    # --- catalogs
    Case("catalog-syntax-error", lambda w: mount(w, catalog=w.catalog(broken=SYNTAX)),
         "broken.py skipped: SyntaxError", "fix or remove"),
    Case("catalog-without-files", lambda w: mount(w, catalog=w.catalog(nofiles=NO_FILES)),
         "declares no FILES list", "FILES = [IterSpec(...), ...]"),
    Case("catalog-raises-at-import", lambda w: mount(w, catalog=w.catalog(raises=RAISES)),
         "RuntimeError: boom at import", "fix or remove"),
    Case("catalog-exits-at-import-mount", lambda w: mount(w, catalog=w.catalog(exits=EXITS)),
         "exits at import (sys.exit(0))", "fix or remove"),
    Case("catalog-exits-at-import-cat",
         lambda w: iterfs_cmd("cat", "pids", "--no-builtin", "--catalog", w.catalog(exits=EXITS)),
         "no catalog file 'pids'", "see: iterfs ls"),
    Case("catalog-empty", lambda w: iterfs_cmd("mount", w.mp, "--pin-root", w.pins, "--no-builtin"),
         "no catalog file could be loaded: the catalog is empty", "give --catalog DIR"),
    Case("catalog-dir-missing", lambda w: mount(w, catalog=w.path("no-such-dir")),
         "no-such-dir does not exist", "--catalog wants a directory"),
    Case("catalog-dir-is-a-file", lambda w: mount(w, catalog=w.write("afile.py", OK)),
         "afile.py is not a directory", "--catalog wants a directory"),
    Case("catalog-duplicate-path",
         lambda w: iterfs_cmd("cat", "pids", "--no-builtin", "--catalog", w.catalog(a=OK, b=OK)),
         "'pids' is declared by both", "rename one"),
    # --- options
    Case("mode-not-octal", lambda w: mount(w, "--mode", "kallsyms=999"),
         "--mode 'kallsyms=999'", "octal mode, e.g. kallsyms=0444"),
    Case("mode-nonsense", lambda w: mount(w, "--mode", "nonsense"),
         "--mode 'nonsense'", "want PATH=MODE"),
    # (--passthrough: a later failure, so that today's daemon, which ignores the unknown
    # path and would serve, stops at once)
    Case("mode-unknown-path", lambda w: mount(w, "--mode", "nosuch=0444", "--passthrough",
                                             w.path("no-procfs")),
         "--mode nosuch=0444: no catalog file 'nosuch'", "see: iterfs ls"),
    Case("hidepid-bogus", lambda w: mount(w, "--hidepid", "bogus"),
         "argument --hidepid: invalid choice: 'bogus'", argparse=True, code=2),
    Case("unknown-command", cli("frobnicate"), "invalid choice: 'frobnicate'", argparse=True,
         code=2),
    # (the cache is used by the build, which precedes the --passthrough check)
    Case("cache-env-is-a-file", lambda w: mount(w, "--passthrough", w.path("no-procfs")),
         "no-procfs: not a directory", setup=bad_cache,
         warn="cache-is-a-file is unusable (Not a directory): programs are built afresh at every "
              "start (point ITERFS_CACHE at a writable directory"),
    # --- the other commands
    Case("cat-unknown-path", cli("cat", "no/such/file"), "no catalog file 'no/such/file'",
         "see: iterfs ls"),
    Case("umount-nothing-mounted", lambda w: iterfs_cmd("umount", w.mp),
         "nothing is mounted on"),
    Case("umount-not-iterfs", lambda w: iterfs_cmd("umount", w.mp),
         "holds a tmpfs filesystem, not iterfs", "not touching it", setup=World.mount_tmpfs),
]


def params():
    for c in CASES:
        yield pytest.param(c, id=c.id)


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    try:
        yield w
    finally:
        w.close()


def run(argv: list[str], env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # a daemon that mounted: unmount and go
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        pytest.fail(f"still running after {TIMEOUT} s (it did not refuse): {err}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def check_message(case: Case, r: subprocess.CompletedProcess) -> None:
    everything = r.stdout + r.stderr
    assert "Traceback" not in everything, everything
    assert r.returncode == case.code, (r.returncode, everything)
    lines = r.stderr.rstrip("\n").split("\n")
    if case.argparse:  # its usage, then one line "iterfs ...: error: ..."
        assert lines[0].startswith("usage: iterfs") and lines[-1].startswith("iterfs"), r.stderr
        assert "error: " in lines[-1] and case.expect in lines[-1], r.stderr
        return
    assert r.stdout == "", r.stdout
    if case.warn:
        assert len(lines) == 2 and lines[0].startswith("iterfs: ") and case.warn in lines[0], \
            r.stderr
        lines = lines[1:]
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert line.startswith("iterfs: "), line
    assert case.expect in line, line
    assert case.todo in line, line


@pytest.mark.parametrize("case", list(params()))
def test_bad_input(case: Case, world: World):
    if case.setup is not None:
        case.setup(world)
    argv = case.argv(world)
    token = uuid.uuid4().hex
    env = dict(os.environ, **world.env, **{TOKEN_VAR: token})
    env.pop("NOTIFY_SOCKET", None)
    keep = [world.mp, *world.keep]
    before = {p: snapshot(p) for p in keep}
    mounts_before = mounts_at(world.mp)
    pins_before = os.path.exists(world.pins)
    objects_before = our_objects()

    try:
        r = run(argv, env)
        check_message(case, r)
        # nothing left behind
        assert processes_with(token) == [], "processes of the run are still alive"
        assert mounts_at(world.mp) == mounts_before, "the mounts on the mountpoint changed"
        if world.pins not in keep:  # (else its content is compared below)
            assert not pins_before and not os.path.exists(world.pins), snapshot(world.pins)
        for p in keep:
            assert snapshot(p) == before[p], f"{p} changed"
        assert our_objects() - objects_before == set(), "BPF objects of the run outlive it"
    finally:
        for pid in processes_with(token):  # never leave a stray daemon or helper around
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

