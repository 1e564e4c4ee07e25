"""iterfs command line: mount, umount, ls, cat, disasm, doctor."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import __version__

log = logging.getLogger("iterfs")


def _catalog_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--catalog", action="append", default=[], metavar="DIR",
                   help="also load catalog modules (*.py) from DIR (repeatable)")
    p.add_argument("--no-builtin", action="store_true", help="skip the built-in catalog")
    p.add_argument("--btf", metavar="FILE", help="kernel BTF to read types from "
                   "(default /sys/kernel/btf/vmlinux)")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="iterfs", description="A /proc replacement: files computed "
                                 "by BPF iterators, served over FUSE.")
    ap.add_argument("--version", action="version", version=f"iterfs {__version__}")
    ap.add_argument("--debug", action="store_true", help="verbose logs and tracebacks")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    m = sub.add_parser("mount", help="mount the catalog and serve it until unmounted or signalled")
    m.add_argument("mountpoint", nargs="?", default="/run/iterfs")
    m.add_argument("--pin-root", default=None, metavar="DIR",
                   help="bpffs directory for the links' pins (default /sys/fs/bpf/iterfs)")
    m.add_argument("--no-allow-other", action="store_true",
                   help="only the mounting user may read the mount")
    m.add_argument("--hidepid", choices=("off", "noaccess", "invisible"), default="off",
                   help="like procfs's hidepid: hide other users' processes (invisible) or "
                        "their contents (noaccess)")
    m.add_argument("--passthrough", metavar="PROCFS",
                   help="serve what iterfs does not from this procfs (e.g. /proc), with the "
                        "reader's credentials")
    m.add_argument("--mode", action="append", default=[], metavar="PATH=MODE",
                   help="override a catalog file's mode, e.g. kallsyms=0444 (repeatable)")
    m.add_argument("--user", metavar="USER",
                   help="serve FUSE requests as USER, with no capabilities, once the programs "
                        "are loaded and the mount made (default: iterfs if it exists, else "
                        "nobody; root keeps root)")
    m.add_argument("--background", action="store_true",
                   help="detach once the mount answers (logs go to --log)")
    m.add_argument("--log", default="/var/log/iterfs.log", metavar="FILE",
                   help="log file of a --background daemon (default /var/log/iterfs.log)")
    _catalog_args(m)

    u = sub.add_parser("umount", help="unmount a running iterfs (also clears a stale mount)")
    u.add_argument("mountpoint", nargs="?", default="/run/iterfs")

    ls = sub.add_parser("ls", help="list the catalog: path, target, mode, support")
    _catalog_args(ls)

    c = sub.add_parser("cat", help="run one catalog file's iterator and print its output")
    c.add_argument("path")
    _catalog_args(c)

    d = sub.add_parser("disasm", help="print a catalog file's program listing")
    d.add_argument("path")
    _catalog_args(d)

    sub.add_parser("doctor", help="check this machine for everything iterfs needs")
    return ap


class UsageError(Exception):
    pass


def _btf(args):
    from .btf import BTF
    return BTF.load(args.btf) if args.btf else BTF.vmlinux()


def _entries(args, btf=None):
    from . import catalog
    entries = catalog.discover(args.catalog, builtin=not args.no_builtin)
    return catalog.check(entries, btf) if btf is not None else entries


def _find(args, btf):
    """The spec for a mount path, and the link parameters the path implies:
    "net/tcp", "1234/stat" (pid=1234), "1234/task/1240/stat" (tid=1240)."""
    import re
    path = args.path.strip("/").removeprefix("run/iterfs/")
    key, params = path, {}
    if m := re.fullmatch(r"(\d+)/task/(\d+)/(.+)", path):
        key, params = f"<pid>/task/<tid>/{m[3]}", {"tid": int(m[2])}
    elif m := re.fullmatch(r"(\d+)/(.+)", path):
        key, params = f"<pid>/{m[2]}", {"pid": int(m[1])}
    found = [e for e in _entries(args, btf) if e.spec is not None and e.spec.key == key]
    if len(found) > 1:  # mount serves the first and skips the others: say so, never guess
        raise UsageError(f"'{key}' is declared by both {found[0].module} and {found[1].module}: "
                         f"mount serves the first and skips the other (rename one of them)")
    for e in found:
        if e.error:
            raise UsageError(f"{path}: module {e.module} is broken: {e.error}")
        if e.unsupported:
            raise UsageError(f"{path} is not supported here: {e.unsupported}")
        return e.spec, params
    raise UsageError(f"no catalog file '{path}' (see: iterfs ls)")


def cmd_mount(args) -> int:
    from .daemon import PIN_ROOT, Config, run
    if args.background:
        return _background(args)
    run(Config(mountpoint=os.path.abspath(args.mountpoint), pin_root=args.pin_root or PIN_ROOT,
               catalog_dirs=tuple(args.catalog), builtin=not args.no_builtin, btf_path=args.btf,
               allow_other=not args.no_allow_other, debug=args.debug, hidepid=args.hidepid,
               passthrough=args.passthrough, modes=_modes(args.mode), user=args.user))
    return 0


def _modes(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items:
        path, sep, mode = item.partition("=")
        try:
            value = int(mode, 8)
        except ValueError:
            value = -1
        if not sep or not path or not 0 < value <= 0o777:
            raise UsageError(f"--mode {item!r}: want PATH=MODE with an octal mode, e.g. kallsyms=0444")
        out[path.strip("/")] = value
    return out


def _background(args) -> int:
    """Start the same mount detached and return once it is ready (READY=1 on a private
    NOTIFY_SOCKET), or fail with the daemon's own error."""
    import socket
    import subprocess
    import time
    argv = [a for a in sys.argv[1:] if a != "--background"]
    addr = f"\0iterfs-ready-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, open(args.log, "ab") as logf:
        sock.bind(addr)
        sock.settimeout(0.2)
        start = logf.tell()
        child = subprocess.Popen([sys.executable, "-m", "iterfs", *argv], stdin=subprocess.DEVNULL,
                                 stdout=logf, stderr=logf, start_new_session=True,
                                 env=dict(os.environ, NOTIFY_SOCKET="@" + addr[1:]))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if b"READY=1" in sock.recv(4096):
                    print(f"iterfs: mounted {args.mountpoint} (pid {child.pid}, log {args.log})")
                    return 0
            except socket.timeout:
                pass
            if child.poll() is not None:
                with open(args.log, "rb") as f:
                    f.seek(start)
                    lines = f.read().decode(errors="replace").strip().splitlines()
                raise UsageError(lines[-1].removeprefix("iterfs: ") if lines else
                                 f"the daemon exited with {child.returncode}")
        child.terminate()
        raise UsageError(f"the daemon did not become ready in 60 s (see {args.log})")


def cmd_umount(args) -> int:
    from .daemon import fusermount_u, mount_state
    mp = os.path.abspath(args.mountpoint)
    what, state = mount_state(mp)
    if not state:
        raise UsageError(f"nothing is mounted on {mp}")
    if what != "iterfs":
        raise UsageError(f"{mp} holds a {what} filesystem, not iterfs: not touching it")
    r = fusermount_u(mp, lazy=state == "stale")
    if r.returncode:
        raise UsageError(f"cannot unmount {mp}: {r.stderr.strip() or r.returncode}")
    return 0


def cmd_ls(args) -> int:
    btf = _btf(args)
    rows = [("PATH", "TARGET", "MODE", "STATUS")]
    for e in _entries(args, btf):
        if e.spec is None:
            rows.append((f"({e.module})", "-", "-", f"broken: {e.error}"))
            continue
        status = (f"broken: {e.error}" if e.error else
                  f"unsupported: {e.unsupported}" if e.unsupported else "iterator")
        rows.append((e.spec.key, e.spec.target, f"{e.spec.mode:04o}", status))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]}")
    return 0


def cmd_cat(args) -> int:
    from . import catalog
    btf = _btf(args)
    spec, params = _find(args, btf)
    out = catalog.read_once(spec, btf, **params)
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    return 0


def cmd_disasm(args) -> int:
    from . import asm
    btf = _btf(args)
    spec, _ = _find(args, btf)
    prog = spec.build(btf)
    print(f"; {spec.path}: iter/{prog.target}, {len(prog.bytecode) // 8} slots, "
          f"{len(prog.rodata)} bytes of rodata (map[idx:0])")
    print(asm.listing(prog.bytecode))
    return 0


def cmd_doctor(args) -> int:
    from .doctor import run_checks
    return run_checks()


COMMANDS = {"mount": cmd_mount, "umount": cmd_umount, "ls": cmd_ls, "cat": cmd_cat,
            "disasm": cmd_disasm, "doctor": cmd_doctor}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="iterfs: %(message)s" if not args.debug
                        else "iterfs: %(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # every user-facing failure is one line; --debug shows where
        if args.debug:
            raise
        print(f"iterfs: {_one_line(e)}", file=sys.stderr)
        return 1


def _expected(e: BaseException) -> bool:
    from .btf import BTFError
    from .daemon import DaemonError
    from .fs import MountError
    return isinstance(e, (OSError, ValueError, LookupError, BTFError, DaemonError, MountError,
                          UsageError, NotADirectoryError))


def _one_line(e: BaseException) -> str:
    msg = " ".join((str(e) or type(e).__name__).split())
    if not _expected(e):
        msg = f"internal error: {type(e).__name__}: {msg} (run with --debug for the traceback)"
    return msg
