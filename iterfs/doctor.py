"""iterfs doctor: the seed guide's troubleshooting list as live checks on this machine."""

from __future__ import annotations

import os
import platform
import shutil

from . import catalog, programs
from .btf import BTF, BTFError
from .dsl import iter as it
from .syscall import BPFError, missing_caps

# Minimum kernel per iterator target (KERNEL-NOTES.md; the last four approximate)
MIN_KERNEL = {"task": (5, 8), "task_file": (5, 8), "bpf_map": (5, 8), "netlink": (5, 8),
              "ipv6_route": (5, 8), "tcp": (5, 9), "udp": (5, 9), "bpf_map_elem": (5, 9),
              "bpf_prog": (5, 10), "sockmap": (5, 10), "task_vma": (5, 12), "unix": (5, 15),
              "bpf_link": (5, 19), "ksym": (6, 0), "cgroup": (6, 1)}


def kernel_version() -> tuple[int, int]:
    parts = platform.release().split(".")
    return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)


class Report:
    def __init__(self):
        self.failed = 0

    def line(self, status: str, what: str, detail: str = "") -> None:
        if status == "FAIL":
            self.failed += 1
        print(f"[{status:>4}] {what}" + (f": {detail}" if detail else ""))


def _bpffs(r: Report) -> None:
    with open("/proc/self/mounts") as f:
        mounted = any(ln.split()[1:3] == [programs.BPFFS, "bpf"] for ln in f)
    if mounted:
        r.line("ok", "bpffs", f"mounted at {programs.BPFFS}")
    elif os.geteuid() == 0:
        r.line("warn", "bpffs", f"not mounted at {programs.BPFFS}; iterfs mount mounts it")
    else:
        r.line("FAIL", "bpffs", f"not mounted; run: mount -t bpf bpf {programs.BPFFS}")


def _target_loads(target: str) -> str:
    """"" when a trivial program for target loads and links here, else why not."""
    code = it.build_iter_program(body=[], default_action="continue")
    try:
        with programs.load_iterator_program(code, target) as prog:
            if target in ("task", "task_file", "task_vma", "bpf_map", "bpf_prog", "bpf_link",
                          "tcp", "udp", "unix", "netlink", "ipv6_route", "ksym"):
                programs.link_iterator(prog).close()
    except (BPFError, programs.UnknownTarget) as e:
        return str(e)
    return ""


def run_checks() -> int:
    r = Report()
    ver = kernel_version()
    r.line("ok" if ver >= (5, 8) else "FAIL", "kernel", f"{platform.release()} "
           f"({'BPF iterators need 5.8+' if ver < (5, 8) else 'BPF iterators since 5.8'})")
    btf = None
    try:
        btf = BTF.vmlinux()
        r.line("ok", "BTF", f"/sys/kernel/btf/vmlinux, {len(btf)} types")
    except BTFError as e:
        r.line("FAIL", "BTF", str(e))
    _bpffs(r)
    lacking = missing_caps()
    r.line("FAIL" if lacking else "ok", "capabilities",
           f"lacking {', '.join(lacking)}: run as root" if lacking else "CAP_BPF + CAP_PERFMON (or root)")
    r.line("ok" if os.path.exists("/dev/fuse") else "FAIL", "/dev/fuse",
           "present" if os.path.exists("/dev/fuse") else "missing: modprobe fuse")
    fm = shutil.which("fusermount3")
    r.line("ok" if fm else "FAIL", "fusermount3", fm or "missing: apt-get install fuse3")
    if btf is None or lacking:
        return 1 if r.failed else 0
    entries = catalog.check(catalog.discover(), btf)
    used = {programs.target_name(e.spec.target) for e in entries if e.spec is not None}
    for target in sorted(btf.iter_targets()):
        why = _target_loads(target)
        need = MIN_KERNEL.get(target)
        extra = f" (since {need[0]}.{need[1]})" if need else ""
        if not why:
            r.line("ok", f"target {target}", "loads and links" + extra)
        else:
            r.line("FAIL" if target in used else "warn", f"target {target}", why)
    for e in entries:
        name = e.spec.path if e.spec is not None else e.module
        if e.error or e.unsupported:
            r.line("FAIL" if e.error else "warn", f"file {name}", e.error or e.unsupported)
            continue
        try:
            catalog.load(e.spec, btf).close()
            r.line("ok", f"file {name}", f"program for {e.spec.target} loads")
        except Exception as exc:  # report every file, whatever failed
            r.line("FAIL", f"file {name}", " ".join(str(exc).split()))
    print(f"{r.failed} check(s) failed" if r.failed else "all checks passed")
    return 1 if r.failed else 0
