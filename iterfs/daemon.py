"""The iterfs daemon: load the catalog, pin its links, serve the FUSE mount, handle signals."""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import dataclasses
import errno
import gc
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading

import trio

from . import catalog, fs, privsep, programs
from .cache import DEFAULT_DIR as DEFAULT_CACHE
from .cache import BuildCache
from .netns import NETNS_DIR, Namespaces
from .passthrough import LocalProc, Passthrough, RemoteProc, helper_handlers
from .procdir import ProcDirs
from .btf import BTF, VMLINUX_PATH
from .syscall import Fd, iter_create, memfd_of, missing_caps

log = logging.getLogger("iterfs")

__all__ = ["Config", "Daemon", "DaemonError", "prepare_mountpoint", "notify", "mount_state"]

PIN_ROOT = f"{programs.BPFFS}/iterfs"


class DaemonError(Exception):
    """A condition the user must fix: one line, says what to do."""


@dataclasses.dataclass
class Config:
    mountpoint: str = "/run/iterfs"
    pin_root: str = PIN_ROOT
    catalog_dirs: tuple[str, ...] = ()
    builtin: bool = True
    btf_path: str | None = None
    allow_other: bool = True
    debug: bool = False
    netns_dir: str = NETNS_DIR
    hidepid: str = "off"
    passthrough: str | None = None
    modes: dict = dataclasses.field(default_factory=dict)  # catalog path -> mode override
    cache_dir: str | None = DEFAULT_CACHE  # built programs kept across starts (None: off)
    netns_poll: float = 1.0  # seconds between looks at netns_dir
    user: str | None = None  # who serves FUSE requests (None: iterfs, else nobody; root: no drop)


def notify(state: str) -> None:
    """sd_notify(3): send state to $NOTIFY_SOCKET if systemd gave us one."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        s.sendall(state.encode())


def mount_state(mountpoint: str) -> tuple[str, str]:
    """(what, state) of whatever is mounted at mountpoint: what is "iterfs" for an iterfs
    mount, else its fstype; state is "" (nothing mounted), "live" or "stale" (a FUSE
    session whose daemon died: ENOTCONN)."""
    mp = os.path.realpath(mountpoint)
    what = mounted(mp)
    if not what:
        return "", ""
    try:
        os.statvfs(mp)  # statfs always reaches the daemon; a cached stat may not
    except OSError as e:
        if e.errno in (errno.ENOTCONN, errno.ECONNABORTED):
            return what, "stale"
        raise
    return what, "live"


def mounted(mountpoint: str) -> str:
    """What /proc/self/mountinfo says is mounted on mountpoint: "iterfs", another fstype,
    or "" (never asks the filesystem itself, so never blocks on a FUSE daemon)."""
    what = ""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == mountpoint:
                sep = fields.index("-")
                fstype, source = fields[sep + 1], fields[sep + 2]
                what = "iterfs" if fstype.startswith("fuse") and source == "iterfs" else fstype
    return what


_MNT_DETACH = 2


def detach_mount(mountpoint: str) -> None:
    """umount2(MNT_DETACH) of an iterfs mount on mountpoint, if there is one. Never
    touches the mount itself (realpath of it would stat its root: a FUSE request)."""
    mp = os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(mountpoint))),
                      os.path.basename(os.path.abspath(mountpoint)))
    while mounted(mp) == "iterfs":
        if ctypes.CDLL(None, use_errno=True).umount2(mp.encode(), _MNT_DETACH) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"umount {mp}: {os.strerror(err)}")


def fusermount_u(mountpoint: str, lazy: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["fusermount3", "-u"] + (["-z"] if lazy else []) + [mountpoint],
                          capture_output=True, text=True)


def prepare_mountpoint(mountpoint: str) -> None:
    """Make mountpoint ready: create it, clear a stale iterfs mount, refuse a busy one."""
    what, state = mount_state(mountpoint)
    if state == "stale":
        log.warning("clearing a stale mount on %s left by a daemon that died", mountpoint)
        r = fusermount_u(mountpoint, lazy=True)
        if r.returncode:
            raise DaemonError(f"cannot clear the stale mount on {mountpoint}: {r.stderr.strip()} "
                              f"(try: umount -l {mountpoint})")
        what, state = mount_state(mountpoint)
    if state == "live":
        if what == "iterfs":
            raise DaemonError(f"{mountpoint} is busy: a live iterfs is mounted there "
                              f"(stop it first: iterfs umount {mountpoint})")
        raise DaemonError(f"{mountpoint} is busy: a {what} filesystem is mounted there "
                          f"(unmount it, or choose another mountpoint)")
    if os.path.lexists(mountpoint) and not os.path.isdir(mountpoint):
        raise DaemonError(f"{mountpoint} is not a directory (choose an empty directory)")
    try:
        os.makedirs(mountpoint, exist_ok=True)
    except OSError as e:
        raise DaemonError(f"cannot create the mountpoint {mountpoint}: {e.strerror} (choose an "
                          f"existing empty directory, or one iterfs can create)") from None
    if os.listdir(mountpoint):
        raise DaemonError(f"{mountpoint} is not empty: iterfs would hide its files "
                          f"(choose an empty directory)")


CAP_SYSLOG = 34


def reader_sees_addresses(ctx) -> bool:
    """Whether the reader of a FUSE request may see kernel addresses: CAP_SYSLOG in its
    effective set, what kallsyms_show_value() and %pK (kptr_restrict 1) ask."""
    if ctx is None:
        return True
    try:
        with open(f"/proc/{ctx.pid}/status", "rb") as f:
            eff = next(int(ln.split()[1], 16) for ln in f if ln.startswith(b"CapEff:"))
    except (OSError, StopIteration, ValueError):
        return False
    return bool(eff & (1 << CAP_SYSLOG))


def check_privileges() -> None:
    lacking = missing_caps()
    if lacking:
        raise DaemonError(f"iterfs mount needs CAP_BPF and CAP_PERFMON to load BPF programs; this "
                          f"process lacks {', '.join(lacking)}: run it as root (sudo) or from the "
                          f"systemd unit")
    if not os.path.exists("/dev/fuse"):
        raise DaemonError("/dev/fuse is missing: load the fuse module (modprobe fuse)")
    if shutil.which("fusermount3") is None:
        raise DaemonError("fusermount3 is missing: install fuse3 (apt-get install fuse3)")


class Daemon:
    """Owns the loaded catalog: links pinned under pin_root, the FUSE ops serving them."""

    def __init__(self, config: Config):
        self.config = config
        self.btf: BTF | None = None
        self.loaded: dict[str, catalog.Loaded] = {}
        self.entries: list[catalog.Entry] = []
        self.ops: fs.IterFS | None = None
        self.netns = Namespaces(config.netns_dir)  # in the helper
        self.netns_names: list[str] = []  # in the server: the namespaces the helper entered
        self.procdirs: ProcDirs | None = None
        self.helper: privsep.Helper | None = None
        self.user: tuple[str, int, int] = ("root", 0, 0)
        self._retired: list[catalog.Loaded] = []  # replaced by the last reload; closed at the next
        self._later: list[catalog.Entry] = []  # per-process files loaded after the mount
        self._later_done = threading.Event()
        self._later_pending = False  # in the server: fetch_later() has work to do
        self._fetched_later = threading.Lock()
        self._lock = threading.Lock()  # reload and the netns watch run in worker threads
        self.cache = BuildCache(config.cache_dir) if config.cache_dir else None
        self.problems: list[str] = []  # why catalog files were skipped at the last load
        self._pin_root_checked = False  # clear_pins() may empty pin_root (see start())

    # --- catalog ---
    def load_btf(self) -> BTF:
        """The BTF, indexed only if something is built: with the build cache warm, the
        iterator targets come from the cache too."""
        self.btf = BTF.lazy(self.config.btf_path or VMLINUX_PATH)
        if self.cache is not None:
            self.cache.prime(self.btf)
        return self.btf

    def _pin_path(self, path: str) -> str:
        return os.path.join(self.config.pin_root, path)

    def _node(self, loaded: catalog.Loaded) -> fs.FileNode:
        link = loaded.link
        node = fs.FileNode(loaded.spec.mode, lambda: link.new_iter().detach(), loaded.spec.path)
        if loaded.spec.pointers:
            node = dataclasses.replace(node, open_for=lambda ctx: self._pointers_iter(link, ctx))
        if loaded.variant is not None:
            shows = catalog.ADDRESS_POLICIES[loaded.spec.addresses]
            node = dataclasses.replace(
                node, open_for=lambda ctx: loaded.new_iter(
                    ctx is None or shows(reader_sees_addresses(ctx))))
        return node

    def _pointers_iter(self, link, ctx, netns: str | None = None) -> int:
        """%pK is formatted for the process that reads the fd. With kptr_restrict 1 a reader
        with CAP_SYSLOG gets real pointers from /proc, which the unprivileged server would
        print as zeros: the helper reads such a session and hands over a memfd."""
        if (ctx is None or os.geteuid() == 0
                or catalog.sysctl_int("kernel/kptr_restrict", 2) != 1
                or not reader_sees_addresses(ctx)):
            if netns is None:
                return link.new_iter().detach()
            return self.helper.call_fd("netns_iter", [link.fd.fd], name=netns)
        return self.helper.call_fd("iter_snapshot", [link.fd.fd], netns=netns)

    def files(self) -> dict[str, fs.FileNode]:
        """The tree: every loaded file, and the netns=True ones again under netns/<name>/."""
        out = {p: self._node(ld) for p, ld in self.loaded.items() if not ld.spec.per}
        helper = self.helper
        for name in self.netns_names:
            for path, ld in self.loaded.items():
                if ld.spec.netns:
                    link = ld.link
                    node = fs.FileNode(ld.spec.mode, lambda n=name, link=link: helper.call_fd(
                        "netns_iter", [link.fd.fd], name=n), path)
                    if ld.spec.pointers:
                        node = dataclasses.replace(node, open_for=lambda ctx, n=name, link=link:
                                                   self._pointers_iter(link, ctx, n))
                    out[f"netns/{name}/{path}"] = node
        return out

    def load_catalog(self, defer_per: bool = False) -> None:
        """(Re)load every catalog entry. Paths whose target and parameters are unchanged keep
        their link and pin: the new program is swapped in with BPF_LINK_UPDATE. defer_per
        (at start): leave the per-process files, most of the verifier's time, to
        load_later(), unless nothing else loads."""
        self.entries = catalog.check(catalog.discover(self.config.catalog_dirs,
                                                      builtin=self.config.builtin), self.btf)
        keys = {e.spec.key for e in self.entries if e.spec is not None}
        for path in sorted(set(self.config.modes) - keys):
            msg = (f"--mode {path}={self.config.modes[path]:04o}: no catalog file '{path}' "
                   f"(see: iterfs ls)")
            if not self.loaded:  # at start: refuse; a reload keeps serving
                raise DaemonError(msg)
            log.warning(msg)
        new: dict[str, catalog.Loaded] = {}
        todo = []
        problems: list[tuple[int, str]] = []  # (log level, message), in catalog order
        for e in self.entries:
            if e.spec is not None and e.spec.key in self.config.modes:
                e.spec = dataclasses.replace(e.spec, mode=self.config.modes[e.spec.key])
            if e.error:
                problems.append((logging.ERROR, f"catalog module {e.module} skipped: {e.error}"))
            elif e.unsupported:
                problems.append((logging.WARNING, f"{e.spec.key} unsupported: {e.unsupported}"))
            else:
                todo.append(e)

        def load(e: catalog.Entry):
            try:
                return self._load_one(e.spec), ""
            except Exception as exc:  # one bad file never stops the others
                e.error = f"{type(exc).__name__}: {exc}" if self.config.debug else str(exc)
                return None, f"{e.spec.key} (from {e.module}) skipped: {exc}"

        self._later = [e for e in todo if e.spec.per] if defer_per else []
        now = [e for e in todo if e not in self._later]
        # the verifier runs without the GIL: loads on all cores overlap the Python builds
        for batch in (now, self._later):
            with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as pool:
                for e, (ld, why) in zip(batch, pool.map(load, batch)):
                    if ld is not None:
                        new[e.spec.key] = ld
                    else:
                        problems.append((logging.ERROR, why))
            if new:
                break
        else:
            self._later = []
        # one line per problem while something is served (or a reload keeps the old set);
        # when nothing loads at start, start() says it all in its one-line error
        self.problems = [msg for _, msg in problems]
        if new or self.loaded:
            for level, msg in problems:
                log.log(level, msg)
        for path, old in self.loaded.items():
            if path not in new:
                programs.unpin(self._pin_path(path), prune_to=self.config.pin_root)
                old.close()
        self.loaded = new
        if self.procdirs is not None:
            self.procdirs.set_specs(list(new.values()))

    def load_later(self) -> None:
        """The per-process programs load_catalog(defer_per=True) left (in the helper, in a
        thread, while the server already serves)."""
        try:
            with self._lock:
                for e in self._later:
                    try:
                        self.loaded[e.spec.key] = self._load_one(e.spec)
                    except Exception as exc:
                        log.error("%s (from %s) skipped: %s", e.spec.key, e.module, exc)
                self._later = []
        finally:
            self._later_done.set()

    def _load_one(self, spec: catalog.IterSpec) -> catalog.Loaded:
        old = self.loaded.get(spec.key)
        if (old and old.spec.target == spec.target and dict(old.spec.params) == dict(spec.params)
                and (old.variant is None) == (spec.unprivileged is None)):
            return self._swap(old, spec)
        loaded = catalog.load(spec, self.btf, self.cache)
        try:
            if not spec.per:  # per-process files link per open: nothing to pin
                programs.pin(loaded.link.fd, self._pin_path(spec.path))
        except BaseException:
            loaded.close()
            raise
        if old:
            old.close()
        return loaded

    def _swap(self, old: catalog.Loaded, spec: catalog.IterSpec) -> catalog.Loaded:
        """New programs behind the old links (BPF_LINK_UPDATE): pins and readers stay."""
        builds = [(spec.build, old.link)]
        if old.variant is not None:
            builds.append((spec.unprivileged, old.variant[1]))
        progs = []
        try:
            for build, _ in builds:
                progs.append(build(self.btf).load(btf=self.btf))
            for prog, (_, link) in zip(progs, builds):
                link.update(prog)
        except BaseException:
            for prog in progs:
                prog.close()
            raise
        old.program.close()
        variant = None
        if old.variant is not None:
            old.variant[0].close()
            variant = (progs[1], old.variant[1])
        return catalog.Loaded(spec, progs[0], old.link, variant)

    def clear_pins(self) -> None:
        """Remove the pin tree (stale pins of an earlier run, or ours at exit)."""
        root = self.config.pin_root
        if not self._pin_root_checked or not os.path.isdir(root):
            return  # never empty a directory start() did not check is iterfs's own bpffs tree
        for dirpath, dirnames, filenames in os.walk(root, topdown=False):
            for f in filenames:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(dirpath, f))
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)

    def close(self) -> None:
        """Everything this process holds. The server hands unmount and unpinning to the
        helper (and reaps it); without a helper, this process does them."""
        if self.helper is not None:
            self.helper.close()
            self.helper = None
        else:
            self.netns.close()
            self.clear_pins()
        if self.procdirs is not None:
            self.procdirs.close()
            self.procdirs = None
        for ld in list(self.loaded.values()) + self._retired:
            ld.close()
        self.loaded, self._retired = {}, []

    def reload(self) -> None:
        """SIGHUP: the helper loads the catalog again (BPF_LINK_UPDATE where it can) and
        sends every program and link fd back; the server serves the new set."""
        log.info("reloading the catalog")
        try:
            reply, fds = self.helper.call("reload")
            self._adopt(reply["loaded"], fds)
        except Exception as exc:
            log.error("reload failed, keeping the old catalog: %s", exc)
            return
        files = self.files()
        self.ops.replace(files)
        log.info("reloaded: %d files", len(files))

    def fetch_later(self) -> None:
        """The server's copy of the per-process programs the helper loads after the fork
        (once; ProcDirs asks before it serves a process directory)."""
        with self._fetched_later:
            if not self._later_pending:
                return
            reply, fds = self.helper.call("later")
            new = self._decode(reply["loaded"], fds)
            with self._lock:
                self.loaded.update(new)
                self.procdirs.set_specs(list(self.loaded.values()))
            self._later_pending = False

    def _adopt(self, loaded: list[dict], fds: list[int]) -> None:
        """Serve the helper's reload answer (see _h_reload)."""
        new = self._decode(loaded, fds)
        with self._lock:
            for ld in self._retired:  # open() calls still using these have long finished
                ld.close()
            self._retired = list(self.loaded.values())
            self.loaded = new
            self._later_pending = False
            if self.procdirs is not None:
                self.procdirs.set_specs(list(new.values()))

    @staticmethod
    def _decode(loaded: list[dict], fds: list[int]) -> dict[str, catalog.Loaded]:
        """Loaded objects from what _export() sent."""
        owned = [Fd(fd) for fd in fds]
        try:
            it = iter(owned)
            new = {}
            for m in loaded:
                spec = catalog.IterSpec(build=None, **m["spec"])
                pairs = []
                for name, target in m["progs"]:
                    prog = programs.Program(next(it), target, name, b"", 0)
                    pairs.append((prog, programs.Link(next(it), target, prog)))
                new[spec.key] = catalog.Loaded(spec, *pairs[0], pairs[1] if len(pairs) > 1 else None)
        except BaseException:
            for fd in owned:
                fd.close()
            raise
        return new

    # --- the privileged helper's side (runs in the forked helper) ---
    def _helper_handlers(self) -> dict:
        handlers = {
            "netns_names": self._h_netns_names,
            "netns_iter": self._h_netns_iter,
            "reload": self._h_reload,
            "later": self._h_later,
            "iter_snapshot": self._h_iter_snapshot,
            "umount": self._h_umount,
            "probe": self._h_probe,
        }
        if self.config.passthrough:
            handlers.update(helper_handlers(LocalProc(self.config.passthrough)))
        return handlers

    def _h_umount(self, req, fds):
        detach_mount(self.config.mountpoint)
        return {}, []

    def _h_probe(self, req, fds):
        os.stat(os.path.join(self.config.mountpoint, "."))
        return {}, []

    def _h_netns_names(self, req, fds):
        self.netns.refresh()
        return {"names": sorted(self.netns.threads)}, []

    def _h_netns_iter(self, req, fds):
        thread = self.netns.threads.get(req["name"])
        if thread is None:
            raise OSError(errno.ENOENT, f"network namespace {req['name']} is gone")
        return {}, [thread.new_iter(fds[0])]

    def _h_reload(self, req, fds):
        self._later_done.wait()
        with self._lock:
            self.load_catalog()
        return self._export(self.loaded.values())

    def _h_iter_snapshot(self, req, fds):
        netns = req.get("netns")
        if netns is None:
            it = iter_create(fds[0])
        else:
            it = Fd(self._h_netns_iter({"name": netns}, fds)[1][0])
        with it:
            data = programs.read_all(it.fd)
        return {}, [memfd_of(data, "snapshot")]

    def _h_later(self, req, fds):
        self._later_done.wait()
        with self._lock:
            return self._export([ld for ld in self.loaded.values() if ld.spec.per])

    @staticmethod
    def _export(loaded) -> tuple[dict, list[int]]:
        """Specs and (duplicated) fds of Loaded objects, for the server's _decode()."""
        meta, out = [], []
        try:
            for ld in loaded:
                s = ld.spec
                pairs = [(ld.program, ld.link)] + ([ld.variant] if ld.variant else [])
                meta.append({"spec": {"path": s.path, "target": s.target, "mode": s.mode,
                                      "params": dict(s.params), "netns": s.netns, "per": s.per,
                                      "links": s.links, "ptrace": s.ptrace,
                                      "nonempty": s.nonempty, "addresses": s.addresses,
                                      "pointers": s.pointers},
                             "progs": [(p.name, p.target) for p, _ in pairs]})
                for p, link in pairs:
                    out += [os.dup(p.fd.fd), os.dup(link.fd.fd)]
        except BaseException:
            for fd in out:
                os.close(fd)
            raise
        return {"loaded": meta}, out

    def _helper_start(self) -> None:
        if self._later:
            threading.Thread(target=self.load_later, name="load later", daemon=True).start()

    def _helper_cleanup(self) -> None:
        """The helper's last act: unmount (if the server did not) and unpin."""
        try:
            detach_mount(self.config.mountpoint)
        except OSError as exc:
            log.error("%s", exc)
        self.netns.close()
        self.clear_pins()

    # --- lifecycle ---
    def start(self) -> dict[str, fs.FileNode]:
        """Everything before the mount: checks, BTF, bpffs, pins, programs."""
        check_privileges()
        self.user = privsep.resolve_user(self.config.user)
        self.load_btf()
        prepare_mountpoint(self.config.mountpoint)
        programs.ensure_bpffs()
        programs.check_pin_root(self.config.pin_root)  # on bpffs, and not its root
        self._pin_root_checked = True
        self.clear_pins()
        self.load_catalog(defer_per=True)
        if not self._later:
            self._later_done.set()
        if not self.loaded:
            why = "; ".join(self.problems) or "the catalog is empty"
            todo = ("fix or remove the modules named" if self.problems else
                    "give --catalog DIR with catalog modules")
            if not self.config.builtin:
                todo += ", or drop --no-builtin"
            raise DaemonError(f"no catalog file could be loaded: {why} ({todo})")
        self.procdirs = ProcDirs(self.btf, list(self.loaded.values()), hidepid=self.config.hidepid,
                                 cache=self.cache, ensure=self.fetch_later)
        if self.cache is not None:
            self.cache.remember_targets(self.btf)
        if self.config.passthrough and not os.path.isdir(self.config.passthrough):
            raise NotADirectoryError(f"--passthrough {self.config.passthrough}: not a directory "
                                     f"(give the mount point of a procfs, e.g. /proc)")
        # no thread runs yet, and the FUSE fd does not exist: the helper never holds it
        self.helper = privsep.fork_helper(self._helper_handlers(), self._helper_cleanup,
                                          self._helper_start)
        self._later_pending = bool(self._later)
        self._forget_builds()
        self.netns_names = self.helper.call("netns_names")[0]["names"]
        return self.files()

    def _forget_builds(self) -> None:
        """The server builds nothing any more (the helper keeps its copy): give the BTF
        index and the build garbage back to the system."""
        self.btf = None
        BTF.forget_vmlinux()
        gc.collect()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).malloc_trim(0)

    def providers(self) -> tuple:
        out = (self.procdirs,)
        if self.config.passthrough:
            out += (Passthrough(self.config.passthrough, hidepid=self.config.hidepid,
                                fsops=RemoteProc(self.helper)),)
        return out

    def drop_privileges(self) -> None:
        name, uid, gid = self.user
        privsep.drop_privileges(uid, gid)
        log.info("serving as %s (uid %d)%s", name, uid, "" if uid else ", without dropping root")

    async def serve(self, files: dict[str, fs.FileNode]) -> None:
        self.ops = fs.IterFS(files, providers=self.providers())
        async with trio.open_nursery() as nursery:
            async def mount(task_status=trio.TASK_STATUS_IGNORED):
                await fs.serve(self.ops, self.config.mountpoint, allow_other=self.config.allow_other,
                               debug=self.config.debug and os.environ.get("ITERFS_FUSE_DEBUG") == "1",
                               on_mounted=self.drop_privileges, unmount=self._unmount,
                               task_status=task_status)
                nursery.cancel_scope.cancel()  # unmounted: stop listening for signals

            nursery.start_soon(self._signals)
            await nursery.start(mount)
            nursery.start_soon(self._watch_netns)
            # the mount answers once a stat through it comes back (asked by the helper:
            # with --no-allow-other only root may look)
            await trio.to_thread.run_sync(self.helper.call, "probe")
            log.info("ready: %d files on %s", len(files), self.config.mountpoint)
            notify("READY=1\nSTATUS=serving %d files" % len(files))
            nursery.start_soon(self._prefetch)

    async def _watch_netns(self) -> None:
        """Namespaces that appear or vanish in netns_dir show up or go without a restart."""
        def refresh():
            names = self.helper.call("netns_names")[0]["names"]
            with self._lock:
                if names == self.netns_names:
                    return None
                self.netns_names = names
                return self.files()

        while True:
            await trio.sleep(self.config.netns_poll)
            files = await trio.to_thread.run_sync(refresh)
            if files is not None:
                self.ops.replace(files)

    async def _prefetch(self) -> None:
        try:
            await trio.to_thread.run_sync(self.fetch_later)
        except OSError as exc:
            log.error("per-process files unavailable: %s", exc)

    def _unmount(self) -> None:
        self.helper.call("umount")

    async def _signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as sigs:
            async for sig in sigs:
                if sig == signal.SIGHUP:
                    notify("RELOADING=1")
                    await trio.to_thread.run_sync(self.reload)
                    notify("READY=1")
                else:
                    log.info("%s: unmounting", signal.Signals(sig).name)
                    notify("STOPPING=1")
                    fs.terminate()
                    return


def run(config: Config) -> None:
    daemon = Daemon(config)
    try:
        files = daemon.start()
        trio.run(daemon.serve, files)
    finally:
        daemon.close()
