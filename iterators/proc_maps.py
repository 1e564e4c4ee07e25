"""maps — /proc/<pid>/maps from the task_vma iterator, byte for byte.

Served per process (`per="pid"`): the daemon links the program with pid=<pid> at each open,
and the task_vma iterator walks that process's VMAs in address order (find_vma from 0, then
from each vm_end), as /proc's m_start/m_next do with vma_next.

Format (fs/proc/task_mmu.c, 6.18: show_map_vma, show_vma_header_prefix, get_vma_name):

    "%08lx-%08lx %c%c%c%c %08llx %02x:%02x %lu "   start, end, r/w/x/(s|p), pgoff, dev, ino
    then, only when the VMA has a name: spaces up to column 72
    (seq_setwidth(m, 25 + sizeof(void *) * 6 - 1) + seq_pad(m, ' '), which pads to the width
    and then always adds one more ' '), the name, and "\\n". A VMA without a name ends right
    after the inode's trailing space: "... 00:00 0 \\n".

- r/w/x from VM_READ/VM_WRITE/VM_EXEC, 's' for VM_MAYSHARE else 'p'.
- dev, ino, pgoff only for a file VMA: file_user_inode(vm_file)'s i_sb->s_dev (MAJOR =
  dev >> 20, MINOR = dev & 0xfffff) and i_ino, pgoff = vm_pgoff << PAGE_SHIFT; else 0.
  For an overlayfs mmap (vm_file is a backing file, f_mode & FMODE_BACKING) the inode is
  the user-visible one of backing_file->user_path.
- The name, in get_vma_name's order:
  1. a file VMA: "[anon_shmem:<name>]" if a shmem VMA was named with
     prctl(PR_SET_VMA_ANON_NAME), else seq_path(file_user_path(file), "\n"): d_path (with
     the kernel's own " (deleted)" suffix, "/memfd:x (deleted)", "/dev/zero (deleted)" for
     shared anonymous memory, "/SYSV%08x (deleted)", "anon_inode:[...]" ...), every "\n"
     escaped as "\012" (mangle_path; nothing else is escaped, not even "\\").
     The path comes from bpf_d_path (the kernel's d_path itself, which iterator programs
     may call) into PATH_BUF bytes of stack. When it does not fit (-ENAMETOOLONG), and for
     overlayfs backing files (bpf_d_path takes only a verifier-typed struct path, and
     backing_file->user_path lies beyond struct file), the program walks the path by hand
     the way prepend_path does (_PathWalk, the algorithm of iterators/proc_fd.py);
  2. vm_ops->name(vma): special mappings (_install_special_mapping: "[vdso]", "[vvar]",
     "[vvar_vclock]", "[uprobes]", ...): vm_special_mapping->name from vm_private_data;
  3. arch_vma_name(): NULL on x86;
  4. no vm_mm: "[vdso]" (only the gate VMA has none, see below);
  5. vma_is_initial_heap: vm_start < mm->brk && vm_end > mm->start_brk → "[heap]" (strict:
     a VMA starting exactly at brk has no name);
  6. vma_is_initial_stack: vm_start <= mm->start_stack <= vm_end → "[stack]";
  7. anon_vma_name(vma) → "[anon:<name>]" (CONFIG_ANON_VMA_NAME; built only if BTF has
     vm_area_struct.anon_name — this 6.18 kernel has not, and prctl(PR_SET_VMA) fails).
- The gate VMA ("[vsyscall]", x86-64): /proc appends get_gate_vma(mm) after the last VMA.
  It is a static kernel object (arch/x86/entry/vsyscall/vsyscall_64.c gate_vma), not in the
  mm's tree, so task_vma never yields it, and neither BTF nor kallsyms (no KALLSYMS_ALL)
  gives its address. get_gate_vma returns it only if the mm has MM_CONTEXT_HAS_VSYSCALL
  (64-bit processes; not ia32/x32) and vsyscall_mode != NONE; its flags are VM_EXEC
  ("--xp", vsyscall=xonly, the default) or VM_READ|VM_EXEC ("r-xp", vsyscall=emulate). So:
  while walking the VMAs the program records the mm's MM_CONTEXT_HAS_VSYSCALL bit in its
  session state, and the final call (task == NULL) prints the gate line, a constant built
  from the vsyscall mode of the running kernel (vsyscall_line(): the vsyscall= boot
  parameter, else the kernel config's default).
- Threads: with pid= the task_vma iterator visits the thread group leader, then (through
  task_group_seq_get_next's skip_if_dup_files test, which looks at the *previous* thread)
  possibly other threads with the same mm again. Only the leader's walk is printed (task->pid
  == task->tgid). A process whose leader has exited (zombie leader, live threads) prints
  nothing — like /proc, whose mm comes from the leader (proc_mem_open → get_task_mm).
- Retries: all of a VMA's output is produced by one program call; if it does not fit,
  bpf_seq_read drops it and calls again for the same VMA (the session state written on the
  way is idempotent or scratch).

Approximations:
- The walk by hand (long paths, overlayfs) takes neither rename_lock nor mount_lock: a
  rename or mount change during the read may give a mixed path where d_path would retry.
- d_path resolves against the root of the process reading the iterator (the daemon), as
  /proc resolves against its reader's: the same unless the reader is chrooted.
- The opened file pins nothing: /proc/<pid>/maps keeps the mm it found at open (an exec
  after the open empties it); iterfs links at open and finds the mm at each read session.
- Constants that are #defines, not BTF: MM_CONTEXT_HAS_VSYSCALL (bit 1), FMODE_BACKING
  (1 << 24, 6.14+), the VM_* flags.
- Mode: /proc/<pid>/maps is 0444 but opened with PTRACE_MODE_READ (proc_mem_open →
  mm_access); the daemon reads as root, so the spec is marked ptrace=True for the
  permission layer.
"""

from __future__ import annotations

import gzip
import platform
import re

from iterfs import asm
from iterfs.catalog import IterSpec
from iterfs.dsl.program import Addr, Field, IterProgram, ProgramSpec, Stack

PAGE_SHIFT = 12
VM_READ, VM_WRITE, VM_EXEC, VM_MAYSHARE = 0x1, 0x2, 0x4, 0x80
MINORBITS = 20
FMODE_BACKING = 1 << 24            # include/linux/fs.h (6.14+)
MM_CONTEXT_HAS_VSYSCALL = 1        # arch/x86/include/asm/mmu.h (a bit number)
NAME_COLUMN = 25 + 8 * 6 - 1       # seq_setwidth(m, 25 + sizeof(void *) * 6 - 1)
VSYSCALL_ADDR = 0xFFFFFFFFFF600000
PAGE_SIZE = 1 << PAGE_SHIFT
NAME_MAX = 255

# session state (u64 words of IterProgram.session's value)
S_PERMS = 0      # the current VMA's four flag letters + NUL: a "%s" argument (the map value's
                 # address is a register; a stack string's address would need a slot of its own)
S_FLAGS = 8      # SEEN (the leader's VMAs were walked) | GATE (its mm has the gate VMA)
SEEN, GATE = 1, 2
S_LEN, S_I = 16, 24  # scratch: the length of the bytes being written, and a byte index
S_K, S_LVL, S_J = 32, 40, 48  # scratch: the hand-made d_path's level counters

# the line up to the name: "%08lx-%08lx %c%c%c%c %08llx %02x:%02x %lu " with the four
# flag letters as one %s; PREFIX_FIXED is its length without the converted fields
PREFIX = "%08lx-%08lx %s %08llx %02x:%02x %lu "
PREFIX_FIXED = 11  # '-', ' ', the 4 letters, ' ', ' ', ':', ' ', ' '

# stack: what is left of 512 bytes after the fixed slots (7 × 8) and the largest
# bpf_seq_printf argument array (9 × 8); the hand walk carves its slots out of it too
PATH_BUF = 512 - 7 * 8 - 9 * 8


# ------------------------------------------------------------------ the gate VMA line

def _kernel_config() -> str:
    for path in ("/proc/config.gz", f"/boot/config-{platform.release()}"):
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt") as f:
                return f.read()
        except OSError:
            continue
    return ""


def vsyscall_mode() -> str:
    """The x86-64 vsyscall mode: "xonly", "emulate" or "none" (arch/x86/entry/vsyscall:
    the vsyscall= boot parameter, else CONFIG_LEGACY_VSYSCALL_*); "none" off x86-64."""
    if platform.machine() != "x86_64":
        return "none"
    try:
        with open("/proc/cmdline") as f:
            m = re.search(r"(?:^|\s)vsyscall=(\S+)", f.read())
        if m and m.group(1) in ("emulate", "xonly", "none"):
            return m.group(1)
    except OSError:
        pass
    cfg = _kernel_config()
    for mode in ("emulate", "xonly", "none"):
        if f"CONFIG_LEGACY_VSYSCALL_{mode.upper()}=y" in cfg:
            return mode
    return "xonly"


def vma_line(start: int, end: int, perms: str, pgoff: int, major: int, minor: int, ino: int,
             name: str | None) -> str:
    """show_map_vma's line, in Python (for constants and tests)."""
    head = f"{start:08x}-{end:08x} {perms} {pgoff:08x} {major:02x}:{minor:02x} {ino} "
    if name is None:
        return head + "\n"
    return head + " " * max(0, NAME_COLUMN - len(head)) + " " + name + "\n"


def vsyscall_line(mode: str | None = None) -> str:
    """The gate VMA's line ("" when there is none)."""
    mode = mode or vsyscall_mode()
    if mode == "none":
        return ""
    return vma_line(VSYSCALL_ADDR, VSYSCALL_ADDR + PAGE_SIZE, "r-xp" if mode == "emulate" else "--xp",
                    0, 0, 0, 0, "[vsyscall]")


# ------------------------------------------------------------------ program pieces

def _hex_width(p: IterProgram, acc: str, src: str, min_digits: int, scratch: str) -> None:
    """acc += the number of digits "%0<min_digits>x" prints for src (unsigned 64-bit)."""
    done = p.label_name("hexw")
    p.emit(asm.alu("add", acc, min_digits))
    for k in range(min_digits, 16):
        limit = 16 ** k
        if limit < 2 ** 31:
            p.emit(asm.jmp("jlt", src, limit, done))
        else:
            p.emit(asm.ld_imm64(scratch, limit), asm.jmp("jlt", src, asm.reg(scratch), done))
        p.emit(asm.alu("add", acc, 1))
    p.emit(asm.label(done))


def _perms(p: IterProgram, flags: str, base: str, slot: int) -> None:
    """The four letters as a NUL-terminated string at base + slot."""
    p.emit(asm.st("w", base, slot, int.from_bytes(b"---p", "little")), asm.st("w", base, slot + 4, 0))
    for i, (bit, letter) in enumerate(((VM_READ, "r"), (VM_WRITE, "w"), (VM_EXEC, "x"),
                                       (VM_MAYSHARE, "s"))):
        skip = p.label_name("perm")
        p.emit(asm.jmp("jset", flags, bit, f"{skip}_set"), asm.ja(skip),
               asm.label(f"{skip}_set"), asm.st("b", base, slot + i, ord(letter)),
               asm.label(skip))


def _write_escaped(p: IterProgram, state: str, buf: int, cap: int, *, newline: bool) -> None:
    """Write buf[0:n], n = state[S_LEN] (nothing if n > cap), each "\n" as "\012" (seq_path's
    mangle_path with esc = "\n"), then "\n" if `newline` (buf then has cap + 1 bytes: the
    "\n" takes the place of buf[n]). Common case, no newline in the bytes: one bpf_seq_write.

    n and the byte loop's index live in the session map value (S_LEN, S_I), not on the
    stack: the verifier does not track map memory, so the loop's states converge at once,
    whichever byte the scan stopped at (a stack copy would carry "n > i" for each i and
    multiply the states)."""
    L = p.label_name
    plain, escaped, done = L("plain"), L("escaped"), L("written")
    p.emit(asm.ldx("dw", "r5", state, S_LEN), asm.jmp("jgt", "r5", cap, done))
    for i in range(cap):   # unrolled: no loop for the verifier on the common path
        p.emit(asm.jmp("jle", "r5", i, plain),
               asm.ldx("b", "r1", "r10", buf + i), asm.jmp("jeq", "r1", ord("\n"), escaped))
    p.emit(asm.label(plain))
    if newline:
        p.emit(asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", buf), asm.alu("add", "r1", asm.Reg.R5),
               asm.st("b", "r1", 0, ord("\n")), asm.alu("add", "r5", 1))
        p.seq_write_stack(buf, "r5", cap + 1)
    else:
        p.seq_write_stack(buf, "r5", cap)
    p.emit(asm.ja(done))
    # a newline among the bytes (rare: a file name with a newline in it): byte by byte
    loop, nl, nxt, end = L("esc"), L("nl"), L("next"), L("escend")
    p.emit(asm.label(escaped), asm.st("dw", state, S_I, 0),
           asm.label(loop), asm.may_goto(end),
           asm.ldx("dw", "r2", state, S_I), asm.ldx("dw", "r3", state, S_LEN),
           asm.jmp("jge", "r2", asm.Reg.R3, end), asm.jmp("jge", "r2", cap, end),
           asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", buf), asm.alu("add", "r1", asm.Reg.R2),
           asm.ldx("b", "r3", "r1", 0), asm.jmp("jeq", "r3", ord("\n"), nl),
           asm.mov("r2", asm.Reg.R1), asm.mov("r3", 1),
           asm.ldx("dw", "r1", p.meta, p.btf.offsetof("bpf_iter_meta", "seq")),
           asm.call(asm.Helper.seq_write), asm.ja(nxt), asm.label(nl))
    p.seq_write("\\012")
    p.emit(asm.label(nxt), asm.ldx("dw", "r1", state, S_I), asm.alu("add", "r1", 1),
           asm.stx("dw", state, "r1", S_I), asm.ja(loop), asm.label(end))
    if newline:
        p.seq_write("\n")
    p.emit(asm.label(done))


class _PathWalk:
    """d_path by hand (fs/d_path.c d_path → prepend_path → __prepend_path), for the paths
    bpf_d_path cannot give: longer than PATH_BUF - 1 bytes (-ENAMETOOLONG), and overlayfs
    backing files' user paths (no verifier-typed struct path points at them). The same
    algorithm as iterators/proc_fd.py's fallback: from the leaf (dentry, mount) up to the
    reader's root (current->fs->root), crossing mount points (mnt_mountpoint, mnt_parent);
    stop at the top of the mount tree (errors 1 and 2: what was collected stays); a dentry
    that is its own parent below the root (error 3) leaves just "/"; " (deleted)" when
    d_unlinked(leaf). The stack cannot hold the path, so the names are printed root first
    by walking up from the leaf once per level (quadratic in the depth, long paths only).
    Pointers are read with bpf_probe_read_kernel into slots carved out of the (then unused)
    d_path buffer; the counters live in the session map value (untracked by the verifier,
    so the may_goto loops' states converge)."""

    SLOTS = ("d", "m", "par", "rd", "rm", "leafd", "leafm", "tmp")

    def __init__(self, p: IterProgram, state: str, buf: int):
        self.p, self.b, self.state, self.buf = p, p.btf, state, buf
        base = buf + ((NAME_MAX + 1 + 7) & ~7)      # after the name buffer
        self.slot = {n: base + 8 * i for i, n in enumerate(self.SLOTS)}
        assert base + 8 * len(self.SLOTS) <= buf + PATH_BUF

    def ld(self, reg: str, name: str) -> asm.Insn:
        return asm.ldx("dw", reg, "r10", self.slot[name])

    def st(self, name: str, reg: str) -> asm.Insn:
        return asm.stx("dw", "r10", reg, self.slot[name])

    def read(self, dst: str, base: str, off: int, size: int = 8) -> None:
        """slot dst = *(slot base + off) (bpf_probe_read_kernel; clobbers r0-r5)."""
        if size != 8:
            self.p.emit(asm.st("dw", "r10", self.slot[dst], 0))
        self.p.emit(self.ld("r3", base))
        self.p.probe_read(self.slot[dst], size, "r3", off)

    def counter(self, word: int, value) -> None:
        self.p.emit(asm.st("dw", self.state, word, value) if isinstance(value, int)
                    else asm.stx("dw", self.state, value, word))

    def step(self, on_name: str, on_end: str, on_escape: str) -> None:
        """One step of __prepend_path from (d, m): cross mount roots until d is a dentry
        with a name to print (par = its parent) → on_name; the reader's root or the top of
        the mount tree → on_end; a dentry that is its own parent → on_escape."""
        p, off = self.p, self.b.offsetof
        top, notroot, notmnt = (p.label_name(n) for n in ("step", "notroot", "notmnt"))
        p.emit(asm.label(top), asm.may_goto(on_end),
               self.ld("r1", "d"), self.ld("r2", "rd"), asm.jmp("jne", "r1", asm.Reg.R2, notroot),
               self.ld("r1", "m"), asm.alu("add", "r1", off("mount", "mnt")), self.ld("r2", "rm"),
               asm.jmp("jeq", "r1", asm.Reg.R2, on_end), asm.label(notroot))
        self.read("tmp", "m", off("mount", "mnt.mnt_root"))
        p.emit(self.ld("r1", "d"), self.ld("r2", "tmp"), asm.jmp("jne", "r1", asm.Reg.R2, notmnt))
        self.read("tmp", "m", off("mount", "mnt_parent"))
        p.emit(self.ld("r1", "m"), self.ld("r2", "tmp"), asm.jmp("jeq", "r1", asm.Reg.R2, on_end))
        self.read("d", "m", off("mount", "mnt_mountpoint"))
        p.emit(self.ld("r1", "tmp"), self.st("m", "r1"), asm.ja(top), asm.label(notmnt))
        self.read("par", "d", off("dentry", "d_parent"))
        p.emit(self.ld("r1", "d"), self.ld("r2", "par"),
               asm.jmp("jeq", "r1", asm.Reg.R2, on_escape), asm.ja(on_name))

    def from_leaf(self) -> None:
        self.p.emit(self.ld("r1", "leafd"), self.st("d", "r1"),
                    self.ld("r1", "leafm"), self.st("m", "r1"))

    def name(self) -> None:
        """Write "/" + dentry d's name (d_name.len bytes, at most NAME_MAX), "\n" escaped."""
        p, off = self.p, self.b.offsetof
        ok = p.label_name("namelen")
        self.read("tmp", "d", off("dentry", "d_name.len"), size=4)
        p.emit(self.ld("r1", "tmp"), asm.jmp("jle", "r1", NAME_MAX, ok), asm.mov("r1", NAME_MAX),
               asm.label(ok), asm.stx("dw", self.state, "r1", S_LEN))
        self.read("tmp", "d", off("dentry", "d_name.name"))
        p.emit(asm.ldx("dw", "r2", self.state, S_LEN),
               asm.jmp("jle", "r2", NAME_MAX, f"{ok}_b"), asm.mov("r2", NAME_MAX),
               asm.label(f"{ok}_b"),
               asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", self.buf),
               self.ld("r3", "tmp"), asm.call(asm.Helper.probe_read_kernel))
        p.seq_write("/")
        _write_escaped(p, self.state, self.buf, NAME_MAX, newline=False)

    def leaf(self, file: str, path_off: int) -> None:
        """The leaf: the struct path at file + path_off; and the reader's root."""
        p, off = self.p, self.b.offsetof
        p.probe_read(self.slot["leafd"], 8, file, path_off + off("path", "dentry"))
        p.probe_read(self.slot["leafm"], 8, file, path_off + off("path", "mnt"))
        p.emit(self.ld("r1", "leafm"), asm.alu("sub", "r1", off("mount", "mnt")),
               self.st("leafm", "r1"),
               asm.call(asm.Helper.get_current_task), self.st("tmp", "r0"))
        self.read("tmp", "tmp", off("task_struct", "fs"))
        self.read("rd", "tmp", off("fs_struct", "root.dentry"))
        self.read("rm", "tmp", off("fs_struct", "root.mnt"))

    def write(self) -> None:
        """The path from the leaf, then "\n"."""
        p, off, L = self.p, self.b.offsetof, self.p.label_name
        count, counted, escaped, phase2, lvl, walk, walked, suffix, done = (
            L(n) for n in ("count", "counted", "escaped", "phase2", "lvl", "walk", "walked",
                           "suffix", "fbdone"))
        # phase 1: count the names between the leaf and the root
        self.counter(S_K, 0)
        self.from_leaf()
        p.emit(asm.label(count))
        self.step(f"{count}_name", counted, escaped)
        p.emit(asm.label(f"{count}_name"), asm.ldx("dw", "r1", self.state, S_K),
               asm.alu("add", "r1", 1))
        self.counter(S_K, "r1")
        p.emit(self.ld("r1", "par"), self.st("d", "r1"), asm.ja(count), asm.label(escaped))
        self.counter(S_K, 0)
        p.emit(asm.label(counted), asm.ldx("dw", "r1", self.state, S_K),
               asm.jmp("jne", "r1", 0, phase2))
        p.seq_write("/")
        # phase 2: for level k-1 down to 0, walk that many names up and print the name there
        p.emit(asm.label(phase2), asm.ldx("dw", "r1", self.state, S_K))
        self.counter(S_LVL, "r1")
        p.emit(asm.label(lvl), asm.may_goto(suffix),
               asm.ldx("dw", "r1", self.state, S_LVL), asm.jmp("jeq", "r1", 0, suffix),
               asm.alu("sub", "r1", 1))
        self.counter(S_LVL, "r1")
        self.counter(S_J, 0)
        self.from_leaf()
        p.emit(asm.label(walk))
        self.step(f"{walk}_name", suffix, suffix)
        p.emit(asm.label(f"{walk}_name"), asm.ldx("dw", "r1", self.state, S_J),
               asm.ldx("dw", "r2", self.state, S_LVL),
               asm.jmp("jeq", "r1", asm.Reg.R2, walked), asm.alu("add", "r1", 1))
        self.counter(S_J, "r1")
        p.emit(self.ld("r1", "par"), self.st("d", "r1"), asm.ja(walk), asm.label(walked))
        self.name()
        p.emit(asm.ja(lvl), asm.label(suffix))
        # " (deleted)" when d_unlinked(leaf): d_unhashed(leaf) && !IS_ROOT(leaf)
        self.read("tmp", "leafd", off("dentry", "d_hash.pprev"))
        p.emit(self.ld("r1", "tmp"), asm.jmp("jne", "r1", 0, done))
        self.read("tmp", "leafd", off("dentry", "d_parent"))
        p.emit(self.ld("r1", "tmp"), self.ld("r2", "leafd"), asm.jmp("jeq", "r1", asm.Reg.R2, done))
        p.seq_write(" (deleted)")
        p.emit(asm.label(done))
        p.seq_write("\n")


def _has_member(btf, struct: str, member: str) -> bool:
    try:
        btf.member(struct, member)
    except Exception:  # BTFError / KeyError: a kernel without it
        return False
    return True


def build(btf, *, vsyscall: str | None = None) -> ProgramSpec:
    p = IterProgram("task_vma", btf=btf, name="proc_maps")
    L = p.label_name
    final, out, anon, no_name, no_file = (L(n) for n in ("final", "out", "anon", "noname", "nofile"))
    off = btf.offsetof

    # fixed stack slots: 7 × 8 bytes (see PATH_BUF)
    key = p.stack(8)          # the session key
    major, minor, ino, pgoff = (p.stack(8) for _ in range(4))
    aux = p.stack(8)          # scratch
    buf = p.stack(PATH_BUF)

    s = p.reg()               # r7: session state (map value)
    task = p.reg()            # r9: the task, then the file
    p.session(s, key=key)
    p.ctx_ptr("task", dst=task)
    p.emit(asm.jmp("jeq", task, 0, final))
    vma = p.ctx_ptr("vma", dst="r6")   # ctx is not needed any more
    p.emit(asm.jmp("jeq", vma, 0, final))

    # the thread group leader's walk only
    p.load("r1", Field(task, "pid"))
    p.load("r2", Field(task, "tgid"))
    p.emit(asm.jmp("jne", "r1", asm.Reg.R2, out))

    # remember that the leader was seen, and whether its mm has the gate VMA
    gate = vsyscall_line(vsyscall)
    if gate:
        p.load("r1", Field(vma, "vm_mm->context.flags"))
        p.emit(asm.alu("rsh", "r1", MM_CONTEXT_HAS_VSYSCALL), asm.alu("and", "r1", 1),
               asm.alu("lsh", "r1", 1), asm.alu("or", "r1", SEEN), asm.stx("dw", s, "r1", S_FLAGS))

    p.load("r1", Field(vma, "vm_flags"))
    _perms(p, "r1", s, S_PERMS)
    for slot in (major, minor, ino, pgoff):
        p.emit(asm.st("dw", "r10", slot, 0))

    # ---- a file VMA's offset, device and inode (file_user_inode)
    file = p.ptr(Field(vma, "vm_file"), dst=task)
    p.emit(asm.jmp("jeq", file, 0, no_file))
    p.load("r1", Field(vma, "vm_pgoff"))
    p.emit(asm.alu("lsh", "r1", PAGE_SHIFT), asm.stx("dw", "r10", "r1", pgoff))
    backing, have_dev = L("backing"), L("dev")
    p.load("r1", Field(file, "f_mode"))
    p.emit(asm.jmp("jset", "r1", FMODE_BACKING, backing))
    p.load("r1", Field(file, "f_inode->i_ino"))
    p.emit(asm.stx("dw", "r10", "r1", ino))
    p.load("r1", Field(file, "f_inode->i_sb->s_dev"))
    p.emit(asm.ja(have_dev), asm.label(backing))
    # overlayfs: d_inode(backing_file->user_path.dentry); struct backing_file is beyond
    # what the verifier types from a struct file *, so probe reads
    p.probe_read(aux, 8, file, off("backing_file", "user_path") + off("path", "dentry"))
    p.emit(asm.ldx("dw", "r3", "r10", aux))
    p.probe_read(aux, 8, "r3", off("dentry", "d_inode"))
    p.emit(asm.ldx("dw", "r3", "r10", aux))
    p.probe_read(ino, 8, "r3", off("inode", "i_ino"))
    p.emit(asm.ldx("dw", "r3", "r10", aux))
    p.probe_read(aux, 8, "r3", off("inode", "i_sb"))
    p.emit(asm.ldx("dw", "r3", "r10", aux))
    p.probe_read(aux, 4, "r3", off("super_block", "s_dev"))
    p.emit(asm.ldx("w", "r1", "r10", aux),
           asm.label(have_dev),
           asm.mov("r2", asm.Reg.R1), asm.alu("rsh", "r2", MINORBITS),
           asm.stx("dw", "r10", "r2", major),
           asm.alu("and", "r1", (1 << MINORBITS) - 1), asm.stx("dw", "r10", "r1", minor))

    # ---- the printed length of the part before the name → the padding
    p.emit(asm.label(no_file), asm.mov("r4", PREFIX_FIXED))
    for field in ("vm_start", "vm_end"):
        p.load("r2", Field(vma, field))
        _hex_width(p, "r4", "r2", 8, "r3")
    for slot, width in ((pgoff, 8), (major, 2), (minor, 2)):
        p.emit(asm.ldx("dw", "r2", "r10", slot))
        _hex_width(p, "r4", "r2", width, "r3")
    p.emit(asm.ldx("dw", "r2", "r10", ino))
    p.digits("r5", "r2", scratch="r0")
    p.emit(asm.alu("add", "r4", asm.Reg.R5))
    pad = p.pad(NAME_COLUMN, "r4")
    head = [Field(vma, "vm_start"), Field(vma, "vm_end"), s, Stack(pgoff),
            Stack(major), Stack(minor), Stack(ino)]

    has_anon_name = _has_member(btf, "vm_area_struct", "anon_name")

    # ---- 1. a file VMA: "[anon_shmem:<name>]", or its path
    p.emit(asm.jmp("jeq", file, 0, anon))
    if has_anon_name:
        # a shmem VMA named by prctl(PR_SET_VMA_ANON_NAME)
        unnamed = L("unnamed")
        p.load("r1", Field(vma, "anon_name"))
        p.emit(asm.jmp("jeq", "r1", 0, unnamed),
               asm.alu("add", "r1", off("anon_vma_name", "name")), asm.stx("dw", "r10", "r1", aux))
        p.seq_printf(PREFIX + "%s [anon_shmem:%s]\n", *head, pad, Stack(aux))
        p.emit(asm.ja(out), asm.label(unnamed))
    p.seq_printf(PREFIX + "%s ", *head, pad)
    walk = _PathWalk(p, s, buf)
    by_hand, user_path = L("byhand"), L("userpath")
    p.load("r1", Field(file, "f_mode"))
    p.emit(asm.jmp("jset", "r1", FMODE_BACKING, user_path))
    p.addr("r1", Addr(file, "f_path"))
    p.emit(asm.mov("r2", asm.Reg.R10), asm.alu("add", "r2", buf), asm.mov("r3", PATH_BUF),
           asm.call(asm.Helper.d_path),
           # r0 = the length with the NUL, or -errno (-ENAMETOOLONG)
           asm.jmp("jsle", "r0", 0, by_hand), asm.jmp("jsgt", "r0", PATH_BUF, by_hand),
           asm.alu("sub", "r0", 1), asm.stx("dw", s, "r0", S_LEN))
    _write_escaped(p, s, buf, PATH_BUF - 1, newline=True)
    p.emit(asm.ja(out), asm.label(by_hand))
    walk.leaf(file, off("file", "f_path"))
    p.emit(asm.ja(f"{by_hand}_walk"), asm.label(user_path))
    walk.leaf(file, off("backing_file", "user_path"))
    p.emit(asm.label(f"{by_hand}_walk"))
    walk.write()
    p.emit(asm.ja(out))

    # ---- 2. vm_ops->name(vma): special_mapping_name → ((struct vm_special_mapping *)
    # vm_private_data)->name (on x86 the only vm_ops with a name that a VMA without a file
    # can have is special_mapping_vmops; the gate VMA's is never walked)
    p.emit(asm.label(anon))
    not_special = L("notspecial")
    p.load("r1", Field(vma, "vm_ops"))
    p.emit(asm.jmp("jeq", "r1", 0, not_special))
    p.load("r1", Field(vma, "vm_ops->name"))
    p.emit(asm.jmp("jeq", "r1", 0, not_special))
    p.load("r3", Field(vma, "vm_private_data"))
    p.emit(asm.jmp("jeq", "r3", 0, not_special))
    p.probe_read(aux, 8, "r3", off("vm_special_mapping", "name"))
    p.emit(asm.jmp("jne", "r0", 0, not_special),
           asm.ldx("dw", "r1", "r10", aux), asm.jmp("jeq", "r1", 0, not_special))
    p.seq_printf(PREFIX + "%s %s\n", *head, pad, Stack(aux))
    p.emit(asm.ja(out), asm.label(not_special))
    # 3. arch_vma_name(): NULL on x86; 4. vm_mm == NULL: only the gate VMA

    # ---- 5. vma_is_initial_heap: vm_start < brk && vm_end > start_brk
    not_heap = L("notheap")
    p.load("r1", Field(vma, "vm_start"))
    p.load("r2", Field(vma, "vm_mm->brk"))
    p.emit(asm.jmp("jge", "r1", asm.Reg.R2, not_heap))
    p.load("r1", Field(vma, "vm_end"))
    p.load("r2", Field(vma, "vm_mm->start_brk"))
    p.emit(asm.jmp("jle", "r1", asm.Reg.R2, not_heap))
    p.seq_printf(PREFIX + "%s [heap]\n", *head, pad)
    p.emit(asm.ja(out), asm.label(not_heap))

    # ---- 6. vma_is_initial_stack: vm_start <= start_stack <= vm_end
    not_stack = L("notstack")
    p.load("r2", Field(vma, "vm_mm->start_stack"))
    p.load("r1", Field(vma, "vm_start"))
    p.emit(asm.jmp("jgt", "r1", asm.Reg.R2, not_stack))
    p.load("r1", Field(vma, "vm_end"))
    p.emit(asm.jmp("jlt", "r1", asm.Reg.R2, not_stack))
    p.seq_printf(PREFIX + "%s [stack]\n", *head, pad)
    p.emit(asm.ja(out), asm.label(not_stack))

    # ---- 7. anon_vma_name: "[anon:<name>]"
    if has_anon_name:
        p.load("r1", Field(vma, "anon_name"))
        p.emit(asm.jmp("jeq", "r1", 0, no_name),
               asm.alu("add", "r1", off("anon_vma_name", "name")), asm.stx("dw", "r10", "r1", aux))
        p.seq_printf(PREFIX + "%s [anon:%s]\n", *head, pad, Stack(aux))
        p.emit(asm.ja(out))

    # ---- no name: no padding either
    p.emit(asm.label(no_name))
    p.seq_printf(PREFIX + "\n", *head)
    p.emit(asm.ja(out))

    # ---- the final call: the gate VMA after the last VMA
    p.emit(asm.label(final))
    if gate:
        p.emit(asm.ldx("dw", "r1", s, S_FLAGS), asm.jmp("jne", "r1", SEEN | GATE, out))
        p.seq_write(gate)
    p.emit(asm.label(out))
    return p.build()


FILES = [
    IterSpec("maps", "task_vma", build, per="pid", ptrace=True,
             doc="/proc/<pid>/maps (fs/proc/task_mmu.c show_map_vma), the [vsyscall] gate "
                 "line included"),
]
