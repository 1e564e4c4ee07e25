"""fd — the open files of a process: what the daemon turns into <pid>/fd/, a directory of
symlinks like /proc/<pid>/fd/.

A `per="pid"` task_file iterator (linked with pid=<pid> at each open). One line per open
file descriptor of the task <pid> itself, in ascending fd order:

    FD SP TARGET NL        e.g.  "3 /home/u/notes.txt\\n", "4 socket:[81237]\\n"

FD is the descriptor number in decimal ("%u"), then exactly one space, then TARGET up to
the newline. TARGET is byte for byte what readlink("/proc/<pid>/fd/FD") returns, except
that two bytes are escaped, so that a line always ends at the first newline and the
escaping is reversible: "\\n" (0x0a) is written as the four characters \\012 and "\\\\"
(0x5c) as \\134 (octal, like /proc/mounts' mangle_path). No other byte is changed: TARGET
may hold spaces and any other byte but NUL. To parse: split each line at its first space,
int() the left part, and replace every "\\" + three octal digits in the right part by
that byte (every backslash in TARGET starts such an escape).

How TARGET is made (fs/proc/fd.c proc_fd_link + fs/proc/base.c do_proc_readlink, which is
d_path(&file->f_path) against the reader's root):
- bpf_d_path(&file->f_path) — the helper calls the kernel's d_path() itself
  (kernel/trace/bpf_trace.c), which iterator programs may call (bpf_d_path_allowed accepts
  BPF_TRACE_ITER). d_path() does all of /proc's rules: d_op->d_dname names of the pseudo
  filesystems (sockfs_dname "socket:[INO]", pipefs_dname "pipe:[INO]",
  anon_inodefs_dname "anon_inode:NAME" such as anon_inode:[eventfd] and
  anon_inode:bpf-map, nsfs "net:[INO]", ...), the " (deleted)" suffix for unlinked
  dentries (so memfds read "/memfd:NAME (deleted)"), paths relative to the reading
  process's root (current->fs->root: the daemon's, as /proc uses its reader's), and
  detached or internal mounts. The result is exact by construction.
- bpf_d_path needs its buffer on the stack (512 bytes in all), so it works for targets up
  to PATH_BUF - 1 bytes. A longer path fails with -ENAMETOOLONG; then the program
  rebuilds it the way prepend_path()/__prepend_path() (fs/d_path.c) does: from the
  file's dentry and mount up to the reader's root, crossing mount points (mnt_mountpoint,
  mnt_parent), "/" alone for a path that escaped its root (error 3), the names of a
  detached mount's tree as they are (errors 1, 2), and " (deleted)" when d_unlinked(). As
  the stack cannot hold the whole path, the components are printed root first by
  walking from the leaf once per level (quadratic in the depth; only for long paths).
  d_dname names never need this (dynamic_dname caps them at 64 bytes, simple_dname at
  NAME_MAX + 12).

Approximations: the fallback walk takes neither rename_lock nor mount_lock (a rename or
mount change during the read may give a mixed path; d_path would retry). A process whose
leader has exited (zombie leader, live threads) shows no fds, as /proc/<pid>/fd does.
Only the table of the task <pid> is listed: the task_file iterator also yields the
threads that have a file table of their own (unshare(CLONE_FILES)); those belong to
/proc/<pid>/task/<tid>/fd and are skipped here.

Cost per fd: one bpf_d_path, an unrolled 8-bytes-at-a-time scan for the two escaped bytes,
and one bpf_seq_printf("%u %s\\n"); 10,000 fds list in ~15 ms where listdir + readlink of
/proc/<pid>/fd takes ~120 ms. The program is ~2,800 instructions (the scan is unrolled;
the fallback loops use may_goto, kernel 6.9+) and takes ~0.1 s to verify, once per load.
"""

import re

from iterfs import asm
from iterfs.catalog import IterSpec
from iterfs.dsl.program import Field, IterProgram, ProgramSpec, Stack

PATH_BUF = 352      # bpf_d_path's buffer (the rest of the 512-byte stack holds the walk state)
NAME_MAX = 255
ONES, HIGHS = 0x0101010101010101, 0x8080808080808080
ESCAPES = {ord("\n"): "\\012", ord("\\"): "\\134"}


def parse(listing: bytes) -> dict[int, bytes]:
    """The daemon's side: {fd: readlink target bytes} from this file's output."""
    out = {}
    for line in listing.split(b"\n")[:-1]:
        fd, _, target = line.partition(b" ")
        out[int(fd)] = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), target)
    return out


class _Fd:
    """Code generation for one build (labels, slots)."""

    def __init__(self, p: IterProgram):
        self.p = p
        self.b = p.btf
        self.buf = p.stack(PATH_BUF)
        names = ("fd", "n", "i", "x", "tmp", "d", "m", "par", "rd", "rm", "k", "lvl", "j",
                 "leafd", "leafm")
        self.slot = {n: p.stack(8) for n in names}

    # -- small pieces
    def ld(self, reg: str, name: str) -> asm.Insn:
        return asm.ldx("dw", reg, "r10", self.slot[name])

    def st(self, name: str, reg: str) -> asm.Insn:
        return asm.stx("dw", "r10", reg, self.slot[name])

    def read(self, dst: str, base: str, off: int, size: int = 8) -> None:
        """slot[dst] = *(base_slot + off) with bpf_probe_read_kernel (clobbers r0-r5)."""
        p = self.p
        if size != 8:
            p.emit(asm.st("dw", "r10", self.slot[dst], 0))
        p.emit(self.ld("r3", base), asm.alu("add", "r3", off),
               asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", self.slot[dst]),
               asm.mov("r2", size), asm.call(asm.Helper.probe_read_kernel))

    def store_misc(self, name: str, reg: str) -> None:
        """slot[name] = reg, through bpf_probe_read_kernel: the verifier then sees unknown
        bytes there, not a tracked scalar, so loop counters kept that way never make two
        iterations' states differ (a precise counter would make the verifier walk every
        iteration of the loop). Clobbers r0-r5."""
        p = self.p
        p.emit(asm.stx("dw", "r10", reg, self.slot["x"]),
               asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", self.slot[name]),
               asm.mov("r2", 8), asm.mov("r3", asm.Reg.R10), asm.alu("add", "r3", self.slot["x"]),
               asm.call(asm.Helper.probe_read_kernel))

    def seq(self, reg: str = "r1") -> asm.Insn:
        return asm.ldx("dw", reg, self.p.meta, self.b.offsetof("bpf_iter_meta", "seq"))

    def write_const(self, text: str) -> None:
        self.p.seq_write(text)

    # -- output of buf[0:n]
    def scan(self, dirty: str, clean: str) -> None:
        """Jump to dirty if buf[0:slot n] holds a newline or a backslash, else to clean.
        Unrolled over the buffer's words: no loop for the verifier, 8 bytes per step."""
        p = self.p
        p.emit(asm.ld_imm64("r5", ONES), asm.ld_imm64("r0", HIGHS))
        for w in range(PATH_BUF // 8):
            keep = p.label_name("whole")
            p.emit(self.ld("r1", "n"), asm.jmp("jle", "r1", 8 * w, clean),
                   asm.ldx("dw", "r2", "r10", self.buf + 8 * w),
                   asm.alu("sub", "r1", 8 * w), asm.jmp("jge", "r1", 8, keep),
                   # bytes past the end become 0xff, which is neither byte searched for
                   asm.alu("lsh", "r1", 3), asm.mov("r3", -1), asm.alu("lsh", "r3", asm.Reg.R1),
                   asm.alu("or", "r2", asm.Reg.R3), asm.label(keep))
            for byte in ESCAPES:
                p.emit(asm.ld_imm64("r3", ONES * byte), asm.alu("xor", "r3", asm.Reg.R2),
                       asm.mov("r4", asm.Reg.R3), asm.alu("sub", "r4", asm.Reg.R5),
                       asm.alu("xor", "r3", -1), asm.alu("and", "r4", asm.Reg.R3),
                       asm.alu("and", "r4", asm.Reg.R0), asm.jmp("jne", "r4", 0, dirty))
        p.emit(asm.ja(clean))

    def escaped(self) -> None:
        """Write buf[0:slot n] byte by byte, newline and backslash as octal escapes."""
        p = self.p
        loop, end, nl, bs, nxt = (p.label_name(n) for n in ("esc", "esc_end", "nl", "bs", "next"))
        p.emit(asm.mov("r1", 0))
        self.store_misc("i", "r1")
        p.emit(asm.label(loop), asm.may_goto(end),
               self.ld("r1", "i"), self.ld("r2", "n"),
               asm.jmp("jge", "r1", asm.Reg.R2, end), asm.jmp("jge", "r1", PATH_BUF, end),
               asm.mov("r2", asm.Reg.R10), asm.alu("add", "r2", self.buf),
               asm.alu("add", "r2", asm.Reg.R1),
               asm.ldx("b", "r3", "r2", 0),
               asm.jmp("jeq", "r3", ord("\n"), nl), asm.jmp("jeq", "r3", ord("\\"), bs),
               self.seq("r1"), asm.mov("r3", 1), asm.call(asm.Helper.seq_write), asm.ja(nxt),
               asm.label(nl))
        self.write_const(ESCAPES[ord("\n")])
        p.emit(asm.ja(nxt), asm.label(bs))
        self.write_const(ESCAPES[ord("\\")])
        p.emit(asm.label(nxt), self.ld("r1", "i"), asm.alu("add", "r1", 1))
        self.store_misc("i", "r1")
        p.emit(asm.ja(loop), asm.label(end))

    def write_buf(self) -> None:
        """Write buf[0:slot n] (escaping when needed)."""
        p = self.p
        dirty, clean, done = (p.label_name(n) for n in ("dirty", "clean", "written"))
        self.scan(dirty, clean)
        p.emit(asm.label(clean), self.ld("r3", "n"),
               asm.jmp("jgt", "r3", PATH_BUF, done), self.seq("r1"),
               asm.mov("r2", asm.Reg.R10), asm.alu("add", "r2", self.buf),
               asm.call(asm.Helper.seq_write), asm.ja(done), asm.label(dirty))
        self.escaped()
        p.emit(asm.label(done))

    # -- the fallback: prepend_path by hand
    def step(self, on_name: str, on_end: str, on_escape: str) -> None:
        """One step of __prepend_path from (slot d, slot m): cross mount roots until d is a
        dentry with a name to print (slot par = its parent) → on_name; the reader's root or
        the top of the mount tree → on_end; a dentry that is its own parent → on_escape."""
        p, b = self.p, self.b
        top, notroot, notmnt = (p.label_name(n) for n in ("step", "notroot", "notmnt"))
        mnt = b.offsetof("mount", "mnt")
        p.emit(asm.label(top), asm.may_goto(on_end),
               self.ld("r1", "d"), self.ld("r2", "rd"), asm.jmp("jne", "r1", asm.Reg.R2, notroot),
               self.ld("r1", "m"), asm.alu("add", "r1", mnt), self.ld("r2", "rm"),
               asm.jmp("jeq", "r1", asm.Reg.R2, on_end), asm.label(notroot))
        self.read("tmp", "m", b.offsetof("mount", "mnt.mnt_root"))
        p.emit(self.ld("r1", "d"), self.ld("r2", "tmp"), asm.jmp("jne", "r1", asm.Reg.R2, notmnt))
        self.read("tmp", "m", b.offsetof("mount", "mnt_parent"))
        p.emit(self.ld("r1", "m"), self.ld("r2", "tmp"), asm.jmp("jeq", "r1", asm.Reg.R2, on_end))
        self.read("d", "m", b.offsetof("mount", "mnt_mountpoint"))
        p.emit(self.ld("r1", "tmp"), self.st("m", "r1"), asm.ja(top), asm.label(notmnt))
        self.read("par", "d", b.offsetof("dentry", "d_parent"))
        p.emit(self.ld("r1", "d"), self.ld("r2", "par"),
               asm.jmp("jeq", "r1", asm.Reg.R2, on_escape),
               asm.ja(on_name))

    def from_leaf(self) -> None:
        self.p.emit(self.ld("r1", "leafd"), self.st("d", "r1"),
                    self.ld("r1", "leafm"), self.st("m", "r1"))

    def name(self) -> None:
        """Write "/" + the name of dentry slot d."""
        p, b = self.p, self.b
        ok = p.label_name("namelen")
        self.read("tmp", "d", b.offsetof("dentry", "d_name.len"), size=4)
        p.emit(self.ld("r1", "tmp"), asm.jmp("jle", "r1", NAME_MAX, ok), asm.mov("r1", NAME_MAX),
               asm.label(ok), asm.alu("add", "r1", 1), self.st("n", "r1"),
               asm.st("b", "r10", self.buf, ord("/")))
        self.read("tmp", "d", b.offsetof("dentry", "d_name.name"))
        p.emit(self.ld("r2", "n"), asm.alu("sub", "r2", 1),
               asm.jmp("jle", "r2", NAME_MAX, f"{ok}_b"), asm.mov("r2", NAME_MAX),
               asm.label(f"{ok}_b"),
               asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", self.buf + 1),
               self.ld("r3", "tmp"), asm.call(asm.Helper.probe_read_kernel))
        self.write_buf()

    def fallback(self, file: str) -> None:
        p, b = self.p, self.b
        L = p.label_name
        count, counted, escaped, phase2, lvl, walk, walked, suffix, done = (
            L(n) for n in ("count", "counted", "escaped", "phase2", "lvl", "walk", "walked",
                           "suffix", "fb_done"))
        # leaf (dentry, struct mount) and the reader's root
        p.emit(asm.mov("r3", asm.reg(file)),
               asm.alu("add", "r3", b.offsetof("file", "f_path.dentry")),
               asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", self.slot["leafd"]),
               asm.mov("r2", 8), asm.call(asm.Helper.probe_read_kernel),
               asm.mov("r3", asm.reg(file)), asm.alu("add", "r3", b.offsetof("file", "f_path.mnt")),
               asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", self.slot["leafm"]),
               asm.mov("r2", 8), asm.call(asm.Helper.probe_read_kernel),
               self.ld("r1", "leafm"), asm.alu("sub", "r1", b.offsetof("mount", "mnt")),
               self.st("leafm", "r1"),
               asm.call(asm.Helper.get_current_task), self.st("tmp", "r0"))
        self.read("tmp", "tmp", b.offsetof("task_struct", "fs"))
        self.read("rd", "tmp", b.offsetof("fs_struct", "root.dentry"))
        self.read("rm", "tmp", b.offsetof("fs_struct", "root.mnt"))
        # phase 1: count the names between the leaf and the root
        p.emit(asm.mov("r1", 0))
        self.store_misc("k", "r1")
        self.from_leaf()
        p.emit(asm.label(count))
        self.step(f"{count}_name", counted, escaped)
        p.emit(asm.label(f"{count}_name"), self.ld("r1", "k"), asm.alu("add", "r1", 1))
        self.store_misc("k", "r1")
        p.emit(self.ld("r1", "par"), self.st("d", "r1"), asm.ja(count),
               asm.label(escaped), asm.mov("r1", 0))
        self.store_misc("k", "r1")
        p.emit(asm.label(counted))
        p.seq_printf("%u ", Stack(self.slot["fd"]))
        p.emit(self.ld("r1", "k"), asm.jmp("jne", "r1", 0, phase2))
        self.write_const("/")
        # phase 2: for level k-1 down to 0, walk that many names up and print the name there
        p.emit(asm.label(phase2), self.ld("r1", "k"))
        self.store_misc("lvl", "r1")
        p.emit(asm.label(lvl), asm.may_goto(suffix),
               self.ld("r1", "lvl"), asm.jmp("jeq", "r1", 0, suffix), asm.alu("sub", "r1", 1))
        self.store_misc("lvl", "r1")
        p.emit(asm.mov("r1", 0))
        self.store_misc("j", "r1")
        self.from_leaf()
        p.emit(asm.label(walk))
        self.step(f"{walk}_name", suffix, suffix)
        p.emit(asm.label(f"{walk}_name"), self.ld("r1", "j"), self.ld("r2", "lvl"),
               asm.jmp("jeq", "r1", asm.Reg.R2, walked), asm.alu("add", "r1", 1))
        self.store_misc("j", "r1")
        p.emit(self.ld("r1", "par"), self.st("d", "r1"), asm.ja(walk),
               asm.label(walked))
        self.name()
        p.emit(asm.ja(lvl), asm.label(suffix))
        # " (deleted)" when d_unlinked(leaf): !IS_ROOT(leaf) && d_unhashed(leaf)
        self.read("tmp", "leafd", b.offsetof("dentry", "d_hash.pprev"))
        p.emit(self.ld("r1", "tmp"), asm.jmp("jne", "r1", 0, done))
        self.read("tmp", "leafd", b.offsetof("dentry", "d_parent"))
        p.emit(self.ld("r1", "tmp"), self.ld("r2", "leafd"), asm.jmp("jeq", "r1", asm.Reg.R2, done))
        self.write_const(" (deleted)")
        p.emit(asm.label(done))
        self.write_const("\n")


def build_fd(btf) -> ProgramSpec:
    p = IterProgram("task_file", btf=btf, name="proc_fd")
    t = p.ctx_ptr("task")
    p.exit_if_null(t)
    p.load("r1", Field(t, "pid"))
    p.load("r2", Field(t, "tgid"))
    end = p.label_name("end")
    p.emit(asm.jmp("jne", "r1", asm.Reg.R2, end))   # only the table of the task <pid>
    f = p.ctx_ptr("file")
    p.exit_if_null(f)
    g = _Fd(p)
    long_path, dirty, clean = p.label_name("long"), p.label_name("dirty"), p.label_name("clean")
    p.load("r1", Field(p.ctx, "fd", struct="bpf_iter__task_file"))
    p.emit(g.st("fd", "r1"),
           asm.mov("r1", asm.reg(f)), asm.alu("add", "r1", btf.offsetof("file", "f_path")),
           asm.mov("r2", asm.Reg.R10), asm.alu("add", "r2", g.buf), asm.mov("r3", PATH_BUF),
           asm.call(asm.Helper.d_path),
           asm.jmp("jsle", "r0", 0, long_path),         # -ENAMETOOLONG
           asm.alu("sub", "r0", 1), g.st("n", "r0"))     # length without the NUL
    g.scan(dirty, clean)
    p.emit(asm.label(clean), asm.mov(t, asm.Reg.R10), asm.alu("add", t, g.buf))
    p.seq_printf("%u %s\n", Stack(g.slot["fd"]), t)
    p.emit(asm.ja(end), asm.label(dirty))
    p.seq_printf("%u ", Stack(g.slot["fd"]))
    g.escaped()
    g.write_const("\n")
    p.emit(asm.ja(end), asm.label(long_path))
    g.fallback(f)
    p.emit(asm.label(end))
    return p.build()


FILES = [
    IterSpec("fd", "task_file", build_fd, per="pid", links=True, ptrace=True,
             doc="/proc/<pid>/fd/ as '<fd> <readlink target>' lines (\\n and \\\\ escaped "
                 "as \\012 and \\134)"),
]
