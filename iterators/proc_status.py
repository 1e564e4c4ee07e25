"""<pid>/status and <pid>/task/<tid>/status — what fs/proc/array.c proc_pid_status() of the
running Linux 6.18 prints, byte for byte.

Two `task` iterator programs: `<pid>/status` is linked with pid=<pid>; the iterator yields
every thread of the process, the group leader first (task_group_seq_get_next starts at
get_pid_task(pid, PIDTYPE_TGID)), and the status is printed for that first task only
(meta->seq_num == 0), as /proc/<pid>/status shows the leader. `<pid>/task/<tid>/status` is
linked with tid=<tid> and prints for the one task it yields. A thread id given as pid= yields
nothing: an empty file.

The format (x86-64, this kernel's configuration; [..] only when present):

    Name:\t%s                      proc_task_name(m, p, true): escaped, see below
    [Umask:\t%#04o]                 p->fs->umask, only when p->fs (not for zombies)
    State:\t%s                      task_state_array[task_state_index(p)], "S (sleeping)"
    Tgid: Ngid: Pid: PPid: TracerPid:
    Uid:\t%u\t%u\t%u\t%u  Gid: ... real, effective, saved, fs ids of p->real_cred
    FDSize:\t%u                     p->files->fdt->max_fds (0 without files)
    Groups:\t                       every supplementary group followed by " " (the kernel
                                     separates them with " " and adds one trailing space;
                                     none: a single space)
    NStgid: NSpid: NSpgid: NSsid:   one tab-separated number per pid namespace level from
                                     the reader's down to the task's
    Kthread:\t0|1                   PF_KTHREAD
    [task_mem, only with an mm (get_task_mm: not for kernel threads, zombies, exited mm):
     VmPeak VmSize VmLck VmPin VmHWM VmRSS RssAnon RssFile RssShmem VmData VmStk VmExe
     VmLib VmPTE VmSwap HugetlbPages:  seq_put_decimal_ull_width(.., 8) + " kB"
     CoreDumping:\t0|1  THP_enabled:\t0|1  untag_mask:\t%#lx]
    Threads: SigQ:\t%u/%lu          task_sig (under lock_task_sighand: all 0 without
    SigPnd ShdPnd SigBlk SigIgn SigCgt   sighand), sigsets as 16 hex digits
    CapInh CapPrm CapEff CapBnd CapAmb   16 hex digits (seq_put_hex_ll(.., 16))
    NoNewPrivs Seccomp Seccomp_filters Speculation_Store_Bypass SpeculationIndirectBranch
    Cpus_allowed:\t%*pb  Cpus_allowed_list:\t%*pbl     task->cpus_mask, nr_cpu_ids bits
    Mems_allowed:\t%*pb  Mems_allowed_list:\t%*pbl     task->mems_allowed, MAX_NUMNODES bits
    voluntary_ctxt_switches nonvoluntary_ctxt_switches

Every line of that list is reproduced exactly, with the kernel's logic (offsets from BTF):
- Name: proc_task_name into tcomm[64] (a kernel thread's kthread->full_name, a workqueue
  worker's "kworker/..+desc" via _proc.task_name, else comm), at most 63 characters as
  the 64-byte buffer allows, then seq_escape_str(.., ESCAPE_SPACE | ESCAPE_SPECIAL,
  "\\n\\\\"): only '\\n' becomes "\\n" and '\\\\' becomes "\\\\\\\\"; every other byte (tab,
  space, UTF-8) is printed as is.
- Tgid, Pid, PPid (task_ppid_nr_ns: 0 when !pid_alive), TracerPid (ptrace_parent: p->parent
  when p->ptrace), NS*: pid_nr_ns() of signal->pids[PIDTYPE_TGID/PGID/SID], p->thread_pid,
  real_parent's tgid pid, in the pid namespace of the reader (task_active_pid_ns of
  bpf_get_current_task_btf(), as the task iterator uses its creator's): numbers[level]
  when that level's ns is the reader's, else 0. For the NS lines the namespaces are
  pid->numbers[g].ns for g from the reader's level to the task's.
- Ngid: task_numa_group_id (p->numa_group->gid, 0 without one).
- Uid/Gid/Groups: from_kuid_munged/from_kgid_munged in the reader's user namespace, taken
  as the initial one (identity; see below).
- task_mem: anon, file, shmem and swap are get_mm_counter_sum() =
  percpu_counter_sum_positive(&mm->rss_stat[i]): count plus every CPU's s32, clamped at 0.
  The CPUs are walked with bpf_map_lookup_percpu_elem on the program's per-CPU array
  (programs.MAP_PERCPU): value - pptrs[0] is __per_cpu_offset[cpu], NULL from nr_cpu_ids
  on. The kernel sums cpu_online_mask | cpu_dying_mask; an offline CPU's counters are 0
  (percpu_counter_cpu_dead folds them into count), so the sum over all possible CPUs is the
  same. hiwater_vm/hiwater_rss are max'ed with the current values, text/lib split as the
  kernel does, VmPTE = pgtables_bytes >> 10, HugetlbPages = hugetlb_usage << 2.
- CoreDumping = !!signal->core_state; THP_enabled = !MMF_DISABLE_THP_COMPLETELY (bit 24 of
  mm->flags) when the kernel has CONFIG_TRANSPARENT_HUGEPAGE (BTF has hugepage_madvise),
  else 0; untag_mask = mm->context.untag_mask with CONFIG_ADDRESS_MASKING (BTF member), else
  -1UL (x86 mm_untag_mask()).
- SigQ: get_rlimit_value(ucounts, UCOUNT_RLIMIT_SIGPENDING) as an unsigned int, slash,
  signal->rlim[RLIMIT_SIGPENDING].rlim_cur. SigIgn/SigCgt: collect_sigign_sigcatch over the
  64 sighand->action[].sa.sa_handler (SIG_IGN 1, SIG_DFL 0).
- NoNewPrivs = PFA_NO_NEW_PRIVS of atomic_flags; Seccomp = seccomp.mode,
  Seccomp_filters = seccomp.filter_count.
- Speculation_Store_Bypass / SpeculationIndirectBranch: arch_prctl_spec_ctrl_get() as
  task_seccomp() words it. ssb_prctl_get() and ib_prctl_get() depend on the task only
  through atomic_flags (PFA_SPEC_SSB_DISABLE 3, _FORCE_DISABLE 4, PFA_SPEC_IB_DISABLE 5,
  _FORCE_DISABLE 6, PFA_SPEC_SSB_NOEXEC 7), reproduced here (including the kernel's quirk
  that PR_SPEC_PRCTL | PR_SPEC_DISABLE_NOEXEC has no case and prints "vulnerable"), and
  otherwise on the global modes ssb_mode, spectre_v2_user_ibpb/_stibp: __ro_after_init
  statics of arch/x86/kernel/cpu/bugs.c that no BPF program can read (not in BTF; no
  kallsyms entry without CONFIG_KALLSYMS_ALL). As they are fixed at boot, the builder
  reads them once (speculation_modes()): ssb_mode from sysfs spec_store_bypass
  (ssb_strings[] inverted exactly); for the indirect branch, ib_prctl_get answers
  PR_SPEC_PRCTL|.. ("conditional ...") for every task exactly when
  is_spec_ib_user_controlled(), otherwise one task-independent value, so the builder's own
  /proc/thread-self/status line says which case holds and gives that value.
- Cpus_allowed: bitmap_string() of nr_cpu_ids bits (32-bit chunks from the top, the first
  with DIV_ROUND_UP(bits % 32 or 32, 4) digits, the rest 8, comma-separated);
  nr_cpu_ids found at run time (the per-CPU lookup is NULL exactly from nr_cpu_ids on).
  Mems_allowed: MAX_NUMNODES = 8 * sizeof(nodemask_t) bits (1024 here; see below).
  *_list: bitmap_list_string(), "a" or "a-b" per run of set bits, comma-separated.

Approximations and limits, precisely:
- pid numbers and NS* lines are in the pid namespace of the process that reads the
  iterator (the daemon), /proc uses the one of its mount; uids/gids/groups are printed as
  kuid/kgid values, which is what /proc prints for a reader in the initial user namespace
  (from_kuid_munged maps through the opener's user namespace; a reader in a child user
  namespace would see mapped ids or the overflow id 65534 in /proc, and the raw ones here).
- Values are read without the kernel's locks (task_lock, sighand lock, the percpu_counter
  lock, RCU for numa_group/fdtable): while a process changes (exits, calls setgroups, faults
  pages in) a line may mix before and after, like two back-to-back /proc reads differ.
- The speculation lines rely on the boot-time modes read when the program is built (a
  build in a context without sysfs and /proc falls back to the per-task logic).
- Mems_allowed assumes MAX_NUMNODES == 8 * sizeof(nodemask_t), true when NODES_SHIFT >= 6
  (x86-64 NUMA kernels: 6..10); a kernel built with fewer than 64 nodes would print fewer
  chunks in /proc.
- CPUs: the sum walks CPUs 0..nr_cpu_ids-1 and takes cpu_possible_mask to have no holes
  (x86 fills it contiguously).
- No x86_Thread_features lines: this kernel has no CONFIG_X86_USER_SHADOW_STACK
  (arch_proc_pid_thread_features is the empty weak function); with it /proc would print
  two more lines at the end.
- A workqueue worker's name follows _proc.task_name (comm + "+desc"/"-desc"); a dying
  worker (pool gone) is "kworker/dying" in 6.18's wq_worker_comm, its comm here.

Speed: a bpf_seq_printf call costs about 0.4 us, plus about 5 ns per byte of format text
and 90 ns per conversion (measured here: 200 literal bytes 1.2 us, 12 x "%016lx" 2.2 us, a
200-byte bpf_seq_write 0.14 us). So the blocks whose fields have a fixed width are stack
templates patched in place and written with bpf_seq_write: the Vm* lines (8-character kB
fields; a value of 10^8 kB or more falls back to bpf_seq_printf's "%8lu"),
CoreDumping/THP_enabled, the ten 16-digit hex lines, the Mems_allowed chunks. The rest
takes 6 bpf_seq_printf calls for a typical process (one more per further CPU or node range,
per 12 supplementary groups, and per number of the NS lines of a process in a nested pid
namespace), one bpf_snprintf for the name and 7 bpf_seq_write: about 12 us of BPF per
status (bpf_stats run_time_ns), 16.7 us with bpf_seq_printf for everything.

Verification: about 70k instructions, 0.25 s per program. The task pointer is turned into
an untrusted one (bpf_rdonly_cast) first: each pointer loaded from a trusted task_struct
makes the verifier search all of BTF (btf_nested_type_is_trusted), which took 4 s here.
Needs Linux >= 6.9 (may_goto), bpf_rdonly_cast and bpf_map_lookup_percpu_elem.
"""

from __future__ import annotations

from iterfs import asm
from iterfs.btf import BTFError, Kind
from iterfs.catalog import IterSpec
from iterfs.dsl.program import Field, IterProgram, ProgramSpec, Stack
from iterfs.programs import MAP_PERCPU

from ._proc import (PF_KTHREAD, TASK_FROZEN, TASK_IDLE, TASK_REPORT, TASK_REPORT_IDLE,
                    TASK_RTLOCK_WAIT, TASK_UNINTERRUPTIBLE, task_name)

# fs/proc/array.c task_state_array, indexed by task_state_index()
STATE_NAMES = ("R (running)", "S (sleeping)", "D (disk sleep)", "T (stopped)",
               "t (tracing stop)", "X (dead)", "Z (zombie)", "P (parked)", "I (idle)")
STATE_STRIDE = 24
# include/linux/sched.h task->atomic_flags bits (PFA_*)
PFA_NO_NEW_PRIVS = 0
PFA_SPEC_SSB_DISABLE, PFA_SPEC_SSB_FORCE_DISABLE = 3, 4
PFA_SPEC_IB_DISABLE, PFA_SPEC_IB_FORCE_DISABLE = 5, 6
PFA_SPEC_SSB_NOEXEC = 7
# include/linux/mm_types.h: MMF_DISABLE_THP_COMPLETELY (6.18; MMF_DISABLE_THP before: same bit)
MMF_DISABLE_THP_COMPLETELY = 24
# include/uapi/asm-generic/resource.h
RLIMIT_SIGPENDING = 11
# x86: PAGE_SHIFT 12; K(x) = x << (PAGE_SHIFT - 10)
PAGE_SHIFT = 12
KB_SHIFT = PAGE_SHIFT - 10
PAGE_MASK = -(1 << PAGE_SHIFT)
# kernel/bpf/helpers.c MAX_BPRINTF_VARARGS
MAX_ARGS = 12
NAME_BUF = 64      # proc_task_name's tcomm[64]
UNION = 128        # the stack area shared by the phases (name, templates, cpu mask, ...)
DEC8_MAX = 10 ** 8

# ------------------------------------------------------------------ speculation lines

PER_TASK = "per-task"
# arch/x86/kernel/cpu/bugs.c ssb_strings[] (sysfs spec_store_bypass) → what
# ssb_prctl_get() returns for every task outside the prctl/seccomp modes, as task_seccomp()
# words it
_SSB_SYSFS = {
    "Not affected": "not vulnerable",                                       # NONE, no bug
    "Vulnerable": "vulnerable",                                             # NONE: ENABLE
    "Mitigation: Speculative Store Bypass disabled": "globally mitigated",  # DISABLE
    "Mitigation: Speculative Store Bypass disabled via prctl": PER_TASK,
    "Mitigation: Speculative Store Bypass disabled via prctl and seccomp": PER_TASK,
}


def _own_status(key: str) -> str | None:
    try:
        with open("/proc/thread-self/status") as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition(":\t")
                if k == key:
                    return v
    except OSError:
        pass
    return None


def speculation_modes() -> tuple[str, str]:
    """(ssb, ib): PER_TASK when the kernel answers per task from task->atomic_flags, else
    the one string it prints for every task (see the module docstring)."""
    ssb = None
    try:
        with open("/sys/devices/system/cpu/vulnerabilities/spec_store_bypass") as f:
            ssb = _SSB_SYSFS.get(f.read().strip())
    except OSError:
        pass
    if ssb is None:
        own = _own_status("Speculation_Store_Bypass")
        ssb = PER_TASK if own is None or own.startswith("thread ") else own
    own = _own_status("SpeculationIndirectBranch")
    ib = PER_TASK if own is None or own.startswith("conditional ") else own
    return ssb, ib


# ------------------------------------------------------------------ the program

def _percpu_map(dst: str) -> asm.Insn:
    return asm.ld_imm64(dst, MAP_PERCPU, src=asm.PseudoSrc.MAP_IDX)


class _Status:
    """Emits proc_pid_status() for the task in register self.t.

    Stack: fixed slots handed out once. `vals` is the bpf_seq_printf argument array: values
    are computed straight into it. Loop counters live in the upper half of 8-byte slots
    (32-bit stores at an offset that is not 8-aligned are not tracked by the verifier), so
    the verifier sees unknown numbers and may_goto loops converge after one round instead of
    being unrolled."""

    def __init__(self, p: IterProgram, task: str, ssb: str, ib: str, *, thp: bool,
                 untag: bool):
        self.p, self.t, self.btf = p, task, p.btf
        self.ssb, self.ib, self.thp, self.untag = ssb, ib, thp, untag
        b = self.btf
        self.seq = b.offsetof("bpf_iter_meta", "seq")
        self.vals = p.stack(8 * MAX_ARGS)
        self.ns = p.stack(16)        # reader's pid ns: level (opaque), pid_namespace *
        self.tmp = p.stack(16)       # probe_read scratch
        self.loop = p.stack(48)      # loop state
        self.mm = p.stack(8)         # the mm_struct pointer
        self.hassig = p.stack(8)     # task->sighand (lock_task_sighand would succeed)
        self.nrcpu = p.stack(8)      # nr_cpu_ids (opaque)
        self.pcpu = p.stack(16)      # &map - map->pptrs[0]; the key 0
        self.misc = p.stack(8)
        self.union = p.stack(UNION)
        self.cpumax = 8 * b.sizeof("struct cpumask")       # NR_CPUS rounded up to longs
        self.cpuwords, self.cpuchunks = self.cpumax // 64, self.cpumax // 32
        self.nodebits = 8 * b.sizeof("nodemask_t")
        assert 8 * self.cpuwords + 9 * self.cpuchunks <= UNION, "NR_CPUS too large"

    # -- small emitters
    def e(self, *insns):
        self.p.emit(*insns)

    def lbl(self, stem: str) -> str:
        return self.p.label_name(stem)

    def val(self, i: int) -> Stack:
        return Stack(self.vals + 8 * i)

    def put(self, i: int, reg: str = "r0"):
        self.e(asm.stx("dw", "r10", reg, self.vals + 8 * i))

    def load(self, dst: str, path: str):
        self.p.load(dst, Field(self.t, path, "task_struct"))

    def rodata(self, dst: str, s: str | bytes):
        self.e(self.p.rodata_ptr(dst, self.p.string(s)))

    def printf(self, fmt: str, *args):
        """bpf_seq_printf with the arguments in vals[0..]: an argument that is val(i) in
        place i is used where it is, others are stored there first."""
        self.p._check_format(fmt, args)
        for i, a in enumerate(args):
            if isinstance(a, Stack) and a.off == self.vals + 8 * i:
                continue
            assert not (isinstance(a, Stack) and self.vals <= a.off < self.vals + 96), a
            self.p.value("r1", a)
            self.put(i, "r1")
        self.e(asm.ldx("dw", "r1", self.p.meta, self.seq),
               self.p.rodata_ptr("r2", self.p.string(fmt)), asm.mov("r3", len(fmt) + 1))
        if args:
            self.e(asm.mov("r4", "r10"), asm.alu("add", "r4", self.vals),
                   asm.mov("r5", 8 * len(args)))
        else:
            self.e(asm.mov("r4", 0), asm.mov("r5", 0))
        self.e(asm.call(asm.Helper.seq_printf))

    def write(self, s: str):
        self.p.seq_write(s)

    def write_stack(self, off: int, size: int):
        self.e(asm.ldx("dw", "r1", self.p.meta, self.seq), asm.mov("r2", "r10"),
               asm.alu("add", "r2", off), asm.mov("r3", size), asm.call(asm.Helper.seq_write))

    def ost(self, slot: int, reg: str):
        """An opaque 32-bit counter: stored where the verifier does not track it."""
        self.e(asm.stx("w", "r10", reg, slot + 4))

    def old(self, reg: str, slot: int):
        self.e(asm.ldx("w", reg, "r10", slot + 4))

    # -- templates: fixed-width fields patched into constant text, one bpf_seq_write
    def template(self, pieces, tail: str):
        """pieces: (text, kind, val index); kind "dec8" (seq_put_decimal_ull_width(.., 8):
        right-aligned in 8, values below 10^8), "digit" (0..9), "hex16" (16 hex digits).
        Writes text0 field0 text1 field1 ... tail from the stack (self.union). A dec8 or
        digit value out of range prints the same text through bpf_seq_printf instead."""
        width = {"dec8": 8, "digit": 1, "hex16": 16}
        conv = {"dec8": "%8lu", "digit": "%u", "hex16": "%016lx"}
        text, fields = b"", []
        for lit, kind, i in pieces:
            text += lit.encode()
            fields.append((kind, len(text), i))
            text += b"0" * width[kind]
        text += tail.encode()
        assert len(text) <= UNION
        slow, done = self.lbl("tmpl_slow"), self.lbl("tmpl_done")
        for kind, _, i in fields:
            if kind in ("dec8", "digit"):
                self.e(asm.ldx("dw", "r1", "r10", self.vals + 8 * i))
                self.e(asm.ld_imm64("r2", DEC8_MAX if kind == "dec8" else 10),
                       asm.jmp("jge", "r1", "r2", slow))
        padded = text + b"\0" * (-len(text) % 8)
        for k in range(0, len(padded), 8):
            self.e(asm.ld_imm64("r1", int.from_bytes(padded[k:k + 8], "little")),
                   asm.stx("dw", "r10", "r1", self.union + k))
        for kind, off, i in fields:
            pos = self.union + off
            self.e(asm.ldx("dw", "r1", "r10", self.vals + 8 * i))
            if kind == "hex16":
                for j in range(16):  # '0' + n, plus 39 when n > 9: ((9 - n) >> 63) * 39
                    self.e(asm.mov("r3", "r1"), asm.alu("rsh", "r3", 60 - 4 * j),
                           asm.alu("and", "r3", 15), asm.mov("r4", 9),
                           asm.alu("sub", "r4", "r3"), asm.alu("rsh", "r4", 63),
                           asm.alu("mul", "r4", ord("a") - ord("9") - 1),
                           asm.alu("add", "r3", "r4"), asm.alu("add", "r3", ord("0")),
                           asm.stx("b", "r10", "r3", pos + j))
            elif kind == "digit":
                self.e(asm.alu("add", "r1", ord("0")), asm.stx("b", "r10", "r1", pos))
            else:  # right to left; a leading zero (the value used up) becomes a space
                for j in range(7, -1, -1):
                    self.e(asm.mov("r3", "r1"), asm.alu("mod", "r3", 10),
                           asm.alu("add", "r3", ord("0")))
                    if j < 7:
                        self.e(asm.mov("r4", "r1"), asm.neg("r4"), asm.alu("or", "r4", "r1"),
                               asm.alu("rsh", "r4", 63), asm.alu("xor", "r4", 1),
                               asm.alu("lsh", "r4", 4), asm.alu("sub", "r3", "r4"))
                    self.e(asm.stx("b", "r10", "r3", pos + j), asm.alu("div", "r1", 10))
        self.write_stack(self.union, len(text))
        if all(kind == "hex16" for kind, _, _ in fields):
            return
        self.e(asm.ja(done), asm.label(slow))
        for j, (_, _, i) in enumerate(pieces):  # the arguments to vals[0..]
            assert i >= j
            if i != j:
                self.e(asm.ldx("dw", "r1", "r10", self.vals + 8 * i), self.put_insn(j, "r1"))
        self.printf("".join(lit + conv[kind] for lit, kind, _ in pieces) + tail,
                    *(self.val(j) for j in range(len(pieces))))
        self.e(asm.label(done))

    # -- per-CPU offsets
    def percpu_setup(self):
        """pcpu = &map - map->pptrs[0] for the program's one-entry per-CPU array
        (programs.MAP_PERCPU): bpf_map_lookup_percpu_elem(map, 0, cpu) is
        pptrs[0] + __per_cpu_offset[cpu], so value - &map + pcpu is that CPU's offset.
        (This kernel resolves no per-CPU symbol for an ld_imm64 BTF_ID, so
        bpf_per_cpu_ptr(&this_cpu_off, cpu) is out.)"""
        b = self.btf
        self.e(_percpu_map("r1"), asm.stx("dw", "r10", "r1", self.tmp))
        self.p.probe_read(self.tmp + 8, 8, "r10", self.tmp)        # the map's address
        self.e(asm.ldx("dw", "r3", "r10", self.tmp + 8),
               asm.alu("add", "r3", b.offsetof("bpf_array", "pptrs")))
        self.p.probe_read(self.tmp, 8, "r3")                        # pptrs[0]
        self.e(asm.ldx("dw", "r1", "r10", self.tmp + 8), asm.ldx("dw", "r2", "r10", self.tmp),
               asm.alu("sub", "r1", "r2"), asm.stx("dw", "r10", "r1", self.pcpu),
               asm.st("dw", "r10", self.pcpu + 8, 0))

    def cpu_offset(self, cpu_reg: str, missing: str):
        """r0 = __per_cpu_offset[cpu_reg]; jump to missing when cpu >= nr_cpu_ids."""
        self.e(asm.mov("r3", cpu_reg), _percpu_map("r1"), asm.mov("r2", "r10"),
               asm.alu("add", "r2", self.pcpu + 8),
               asm.call(asm.Helper.map_lookup_percpu_elem), asm.jmp("jeq", "r0", 0, missing),
               _percpu_map("r1"), asm.alu("sub", "r0", "r1"),
               asm.ldx("dw", "r1", "r10", self.pcpu), asm.alu("add", "r0", "r1"))

    # -- pid numbers
    def reader_ns(self):
        """ns = task_active_pid_ns(current): its level (opaque) and address."""
        b = self.btf
        done = self.lbl("ns")
        self.e(asm.call(asm.Helper.get_current_task_btf),
               asm.ldx("dw", "r1", "r0", b.offsetof("task_struct", "thread_pid")),
               asm.ldx("w", "r2", "r1", b.offsetof("pid", "level")))
        self.ost(self.ns, "r2")
        self.e(asm.st("dw", "r10", self.ns + 8, 0), asm.jmp("jeq", "r2", 0, done),
               asm.alu("lsh", "r2", 4),
               asm.alu("add", "r2", b.offsetof("pid", "numbers") + b.offsetof("upid", "ns")),
               asm.alu("add", "r1", "r2"))
        self.p.probe_read(self.ns + 8, 8, "r1")
        self.e(asm.label(done))

    def pid_nr(self, load_pid, level_slot: int | None = None, ns_slot: int | None = None):
        """r0 = pid_nr_ns(pid, ns): load_pid(reg) leaves the struct pid * in reg; ns is the
        reader's, or the one at *level_slot (opaque) / *ns_slot. Clobbers r0-r5."""
        b = self.btf
        level_slot = self.ns if level_slot is None else level_slot
        ns_slot = self.ns + 8 if ns_slot is None else ns_slot
        done, slow = self.lbl("pidnr"), self.lbl("pidnr_slow")
        load_pid("r1")
        self.e(asm.mov("r0", 0), asm.jmp("jeq", "r1", 0, done))
        self.old("r2", level_slot)
        if level_slot == self.ns:  # level 0: numbers[0].nr, every pid has one
            self.e(asm.jmp("jne", "r2", 0, slow),
                   asm.ldx("w", "r0", "r1", b.offsetof("pid", "numbers") +
                           b.offsetof("upid", "nr")),
                   asm.ja(done))
        self.e(asm.label(slow),
               asm.ldx("w", "r3", "r1", b.offsetof("pid", "level")),
               asm.jmp("jgt", "r2", "r3", done),
               asm.alu("lsh", "r2", 4), asm.alu("add", "r2", b.offsetof("pid", "numbers")),
               asm.alu("add", "r1", "r2"))
        self.p.probe_read(self.tmp, 16, "r1")
        self.e(asm.ldx("dw", "r1", "r10", self.tmp + 8), asm.ldx("dw", "r2", "r10", ns_slot),
               asm.mov("r0", 0), asm.jmp("jne", "r1", "r2", done),
               asm.ldx("w", "r0", "r10", self.tmp),
               asm.label(done))

    def task_pid(self, pidtype: int):
        """load_pid for task_pid_ptr(task, type): thread_pid or signal->pids[type]."""
        b = self.btf

        def load(reg):
            if pidtype == 0:
                self.e(asm.ldx("dw", reg, self.t, b.offsetof("task_struct", "thread_pid")))
            else:
                self.e(asm.ldx("dw", reg, self.t, b.offsetof("task_struct", "signal")),
                       asm.ldx("dw", reg, reg, b.offsetof("signal_struct", f"pids[{pidtype}]")))
        return load

    def ppid(self, reg):
        """task_ppid_nr_ns: pid_alive(p) ? the tgid pid of p->real_parent : none."""
        b = self.btf
        skip = self.lbl("ppid")
        self.e(asm.ldx("dw", reg, self.t, b.offsetof("task_struct", "thread_pid")),
               asm.jmp("jeq", reg, 0, skip),
               asm.ldx("dw", reg, self.t, b.offsetof("task_struct", "real_parent")),
               asm.ldx("dw", reg, reg, b.offsetof("task_struct", "signal")),
               asm.ldx("dw", reg, reg, b.offsetof("signal_struct", "pids[1]")),
               asm.label(skip))

    def tracer(self, reg):
        """ptrace_parent(p): p->ptrace ? p->parent : NULL; then its thread_pid."""
        b = self.btf
        skip = self.lbl("tracer")
        self.e(asm.ldx("w", reg, self.t, b.offsetof("task_struct", "ptrace")),
               asm.jmp("jeq", reg, 0, skip),
               asm.ldx("dw", reg, self.t, b.offsetof("task_struct", "parent")),
               asm.ldx("dw", reg, reg, b.offsetof("task_struct", "thread_pid")),
               asm.label(skip))

    # -- Name
    def name(self):
        """NAME_BUF bytes at self.union: proc_task_name() into tcomm[64] (at most 63
        characters), zero-padded."""
        pieces = task_name(self.p, self.t)
        for k in range(0, NAME_BUF, 8):
            self.e(asm.st("dw", "r10", self.union + k, 0))
        self.p.snprintf(self.union, NAME_BUF, "%s%s%s%s", *pieces)

    def name_needs_escape(self, label: str):
        """Jump to label when the name holds '\\n' or '\\\\'. A word at a time:
        has_byte(x, c) = ((x ^ c*ONES) - ONES) & ~(x ^ c*ONES) & HIGHS is exact as a yes/no
        (the buffer is zero after the name)."""
        ones, highs = 0x0101010101010101, 0x8080808080808080
        self.e(asm.mov("r0", 0), asm.ld_imm64("r4", ones), asm.ld_imm64("r5", highs))
        for k in range(0, NAME_BUF, 8):
            for c in (ord("\n"), ord("\\")):
                self.e(asm.ldx("dw", "r1", "r10", self.union + k),
                       asm.ld_imm64("r2", c * ones), asm.alu("xor", "r1", "r2"),
                       asm.mov("r2", "r1"), asm.alu("sub", "r2", "r4"),
                       asm.alu("xor", "r1", -1), asm.alu("and", "r2", "r1"),
                       asm.alu("and", "r2", "r5"), asm.alu("or", "r0", "r2"))
        self.e(asm.jmp("jne", "r0", 0, label))

    def write_escaped_name(self):
        """"Name:\\t" and the escaped name, one bpf_seq_write per character (the rare
        path): a may_goto loop over the name's bytes."""
        i = self.loop
        loop, end, nl, bs, nxt = (self.lbl(n) for n in ("esc", "esc_end", "esc_nl", "esc_bs",
                                                        "esc_next"))
        self.write("Name:\t")
        self.e(asm.st("w", "r10", i + 4, 0), asm.label(loop), asm.may_goto(end))
        self.old("r1", i)
        self.e(asm.jmp("jgt", "r1", NAME_BUF - 2, end),
               asm.mov("r2", "r10"), asm.alu("add", "r2", self.union), asm.alu("add", "r2", "r1"),
               asm.ldx("b", "r3", "r2", 0), asm.jmp("jeq", "r3", 0, end),
               asm.jmp("jeq", "r3", ord("\n"), nl), asm.jmp("jeq", "r3", ord("\\"), bs),
               asm.ldx("dw", "r1", self.p.meta, self.seq),
               asm.mov("r3", 1), asm.call(asm.Helper.seq_write), asm.ja(nxt), asm.label(nl))
        self.write("\\n")
        self.e(asm.ja(nxt), asm.label(bs))
        self.write("\\\\")
        self.e(asm.label(nxt))
        self.old("r1", i)
        self.e(asm.alu("add", "r1", 1))
        self.ost(i, "r1")
        self.e(asm.ja(loop), asm.label(end))

    # -- Umask / State
    def umask_state(self, slot: int):
        """vals[slot] = "Umask:\\t0ooo\\nState:\\t" (built at union + NAME_BUF) or
        "State:\\t" when the task has no fs_struct ("%#04o" of a umask: "0" and 3 digits)."""
        b = self.btf
        nofs, done = self.lbl("nofs"), self.lbl("umask")
        buf = self.union + NAME_BUF
        self.e(asm.ldx("dw", "r1", self.t, b.offsetof("task_struct", "fs")),
               asm.jmp("jeq", "r1", 0, nofs),
               asm.ldx("w", "r2", "r1", b.offsetof("fs_struct", "umask")),
               asm.ld_imm64("r3", int.from_bytes(b"Umask:\t0", "little")),
               asm.stx("dw", "r10", "r3", buf))
        for i, shift in enumerate((6, 3, 0)):
            self.e(asm.mov("r3", "r2"), asm.alu("rsh", "r3", shift), asm.alu("and", "r3", 7),
                   asm.alu("add", "r3", ord("0")), asm.stx("b", "r10", "r3", buf + 8 + i))
        self.e(asm.st("b", "r10", buf + 11, ord("\n")),
               asm.st("w", "r10", buf + 12, int.from_bytes(b"Stat", "little")),
               asm.st("w", "r10", buf + 16, int.from_bytes(b"e:\t\0", "little")),
               asm.mov("r1", "r10"), asm.alu("add", "r1", buf), asm.ja(done), asm.label(nofs))
        self.rodata("r1", "State:\t")
        self.e(asm.label(done))
        self.put(slot, "r1")

    def state(self, slot: int):
        """vals[slot] = task_state_array[task_state_index(task)] (__task_state_index)."""
        done = self.lbl("state")
        self.load("r2", "__state")
        self.load("r3", "exit_state")
        self.e(asm.mov("r4", "r2"), asm.alu("or", "r4", "r3"), asm.alu("and", "r4", TASK_REPORT),
               asm.mov("r3", "r2"), asm.alu("and", "r3", TASK_IDLE),
               asm.jmp("jne", "r3", TASK_IDLE, f"{done}_rt"), asm.mov("r4", TASK_REPORT_IDLE),
               asm.label(f"{done}_rt"),
               asm.jmp("jset", "r2", TASK_RTLOCK_WAIT | TASK_FROZEN, f"{done}_d"),
               asm.ja(f"{done}_fls"),
               asm.label(f"{done}_d"), asm.mov("r4", TASK_UNINTERRUPTIBLE),
               asm.label(f"{done}_fls"), asm.mov("r5", 0))
        for bit in range(len(STATE_NAMES) - 1, 0, -1):  # fls()
            self.e(asm.jmp("jlt", "r4", 1 << (bit - 1), f"{done}_{bit}"),
                   asm.mov("r5", bit), asm.ja(done), asm.label(f"{done}_{bit}"))
        self.e(asm.label(done))
        table = b"".join(s.encode().ljust(STATE_STRIDE, b"\0") for s in STATE_NAMES)
        self.rodata("r1", table)
        self.e(asm.alu("mul", "r5", STATE_STRIDE), asm.alu("add", "r1", "r5"))
        self.put(slot, "r1")

    # -- Name .. Uid
    def part_name_to_uid(self):
        self.name()
        self.umask_state(1)
        self.state(2)
        for i, load in ((3, self.task_pid(1)), (5, self.task_pid(0)), (6, self.ppid),
                        (7, self.tracer)):
            self.pid_nr(load)
            self.put(i)
        self.load("r0", "numa_group->gid")
        self.put(4)
        self.e(asm.mov("r1", "r10"), asm.alu("add", "r1", self.union))
        self.put(0, "r1")
        uids = [Field(self.t, f"real_cred->{u}.val") for u in ("uid", "euid", "suid", "fsuid")]
        tail = "%s%s\nTgid:\t%u\nNgid:\t%u\nPid:\t%u\nPPid:\t%u\nTracerPid:\t%u\n" \
               "Uid:\t%u\t%u\t%u\t%u\n"
        esc, done = self.lbl("name_esc"), self.lbl("name_done")
        self.name_needs_escape(esc)
        self.printf("Name:\t%s\n" + tail, *(self.val(i) for i in range(8)), *uids)
        self.e(asm.ja(done), asm.label(esc))
        self.write_escaped_name()
        for i in range(1, 8):  # move vals[1..7] down one place
            self.e(asm.ldx("dw", "r1", "r10", self.vals + 8 * i), self.put_insn(i - 1, "r1"))
        self.printf("\n" + tail, *(self.val(i) for i in range(7)), *uids)
        self.e(asm.label(done))

    def put_insn(self, i: int, reg: str) -> asm.Insn:
        return asm.stx("dw", "r10", reg, self.vals + 8 * i)

    # -- Gid .. Kthread
    def groups(self):
        """The supplementary groups, each followed by a space, 12 per bpf_seq_printf (the
        format picked from a table by the count; gid[] read into the union by probe read)."""
        b = self.btf
        gi, i, n = self.loop, self.loop + 8, self.loop + 16
        stride = 40
        table = b"".join(("%u " * k).encode().ljust(stride, b"\0")
                         for k in range(1, MAX_ARGS + 1))
        loop, done = self.lbl("groups"), self.lbl("groups_done")
        self.load("r1", "real_cred")
        self.e(asm.ldx("dw", "r1", "r1", b.offsetof("cred", "group_info")),
               asm.stx("dw", "r10", "r1", gi), asm.st("w", "r10", i + 4, 0),
               asm.label(loop), asm.may_goto(done),
               asm.ldx("dw", "r1", "r10", gi),
               asm.ldx("w", "r2", "r1", b.offsetof("group_info", "ngroups")))
        self.old("r3", i)
        self.e(asm.alu("sub", "r2", "r3"), asm.jmp("jsle", "r2", 0, done),
               asm.jmp("jle", "r2", MAX_ARGS, f"{loop}_n"), asm.mov("r2", MAX_ARGS),
               asm.label(f"{loop}_n"), asm.stx("dw", "r10", "r2", n))
        for k in range(0, 48, 8):
            self.e(asm.st("dw", "r10", self.union + k, 0))
        self.old("r3", i)
        self.e(asm.alu("lsh", "r3", 2), asm.alu("add", "r3", b.offsetof("group_info", "gid")),
               asm.ldx("dw", "r1", "r10", gi), asm.alu("add", "r3", "r1"),
               asm.mov("r1", "r10"), asm.alu("add", "r1", self.union),
               asm.ldx("dw", "r2", "r10", n), asm.alu("lsh", "r2", 2),
               asm.call(asm.Helper.probe_read_kernel))
        for k in range(MAX_ARGS):
            self.e(asm.ldx("w", "r1", "r10", self.union + 4 * k), self.put_insn(k, "r1"))
        self.e(asm.ldx("dw", "r1", self.p.meta, self.seq),
               self.p.rodata_ptr("r2", self.p.string(table)),
               asm.ldx("dw", "r5", "r10", n), asm.mov("r4", "r5"),
               asm.alu("sub", "r4", 1), asm.alu("mul", "r4", stride), asm.alu("add", "r2", "r4"),
               asm.mov("r3", stride),
               asm.mov("r4", "r10"), asm.alu("add", "r4", self.vals),
               asm.alu("lsh", "r5", 3),
               asm.call(asm.Helper.seq_printf))
        self.old("r1", i)
        self.e(asm.ldx("dw", "r2", "r10", n), asm.alu("add", "r1", "r2"))
        self.ost(i, "r1")
        self.e(asm.ja(loop), asm.label(done))

    def ns_values(self, at: int):
        """vals[at..at+4] = NStgid NSpid NSpgid NSsid (one level) and Kthread."""
        for k, pidtype in enumerate((1, 0, 2, 3)):
            self.pid_nr(self.task_pid(pidtype))
            self.put(at + k)
        self.load("r0", "flags")
        assert PF_KTHREAD == 1 << 21
        self.e(asm.alu("rsh", "r0", 21), asm.alu("and", "r0", 1))
        self.put(at + 4)

    def part_gid_to_kthread(self):
        t, b = self.t, self.btf
        gids = [Field(t, f"real_cred->{g}.val") for g in ("gid", "egid", "sgid", "fsgid")]
        fdsize = Field(t, "files->fdt->max_fds")
        ns_line = "NStgid:\t%u\nNSpid:\t%u\nNSpgid:\t%u\nNSsid:\t%u\nKthread:\t%u\n"
        head = "Gid:\t%u\t%u\t%u\t%u\nFDSize:\t%u\nGroups:\t"
        slow, multi, done = self.lbl("gid_slow"), self.lbl("ns_multi"), self.lbl("gid_done")
        # one level (the reader's pid ns is the task's own) → single numbers; misc = that
        self.e(asm.ldx("dw", "r1", t, b.offsetof("task_struct", "thread_pid")),
               asm.ldx("w", "r1", "r1", b.offsetof("pid", "level")))
        self.old("r2", self.ns)
        self.e(asm.mov("r3", 0), asm.jmp("jne", "r1", "r2", f"{slow}_lv"), asm.mov("r3", 1),
               asm.label(f"{slow}_lv"), asm.stx("dw", "r10", "r3", self.misc))
        self.load("r1", "real_cred->group_info->ngroups")
        self.e(asm.jmp("jne", "r1", 0, slow),
               asm.ldx("dw", "r3", "r10", self.misc), asm.jmp("jeq", "r3", 0, slow))
        self.ns_values(5)
        self.printf(head + " \n" + ns_line, *gids, fdsize, *(self.val(k) for k in range(5, 10)))
        self.e(asm.ja(done), asm.label(slow))
        self.printf(head, *gids, fdsize)
        self.load("r1", "real_cred->group_info->ngroups")
        self.e(asm.jmp("jne", "r1", 0, f"{slow}_g"))
        self.write(" ")
        self.e(asm.label(f"{slow}_g"))
        self.groups()
        self.e(asm.ldx("dw", "r3", "r10", self.misc), asm.jmp("jeq", "r3", 0, multi))
        self.ns_values(0)
        self.printf("\n" + ns_line, *(self.val(k) for k in range(5)))
        self.e(asm.ja(done), asm.label(multi))
        self.ns_multi()
        self.e(asm.label(done))

    def ns_multi(self):
        """NStgid/NSpid/NSpgid/NSsid for g = ns->level .. pid->level, each number in the pid
        namespace pid->numbers[g].ns; one bpf_seq_printf per number (nested pid
        namespaces only)."""
        b = self.btf
        g, nsg = self.loop, self.loop + 8
        for name, pidtype in (("NStgid", 1), ("NSpid", 0), ("NSpgid", 2), ("NSsid", 3)):
            loop, done = self.lbl("nsm"), self.lbl("nsm_done")
            self.write(f"\n{name}:")
            self.old("r1", self.ns)
            self.ost(g, "r1")
            self.e(asm.label(loop), asm.may_goto(done),
                   asm.ldx("dw", "r1", self.t, b.offsetof("task_struct", "thread_pid")),
                   asm.ldx("w", "r2", "r1", b.offsetof("pid", "level")))
            self.old("r3", g)
            self.e(asm.jmp("jgt", "r3", "r2", done), asm.alu("lsh", "r3", 4),
                   asm.alu("add", "r3", b.offsetof("pid", "numbers") + b.offsetof("upid", "ns")),
                   asm.alu("add", "r1", "r3"))
            self.p.probe_read(nsg, 8, "r1")
            self.pid_nr(self.task_pid(pidtype), g, nsg)
            self.put(0)
            self.printf("\t%u", self.val(0))
            self.old("r1", g)
            self.e(asm.alu("add", "r1", 1))
            self.ost(g, "r1")
            self.e(asm.ja(loop), asm.label(done))
        self.load("r0", "flags")
        self.e(asm.alu("rsh", "r0", 21), asm.alu("and", "r0", 1))
        self.put(0)
        self.printf("\nKthread:\t%u\n", self.val(0))

    # -- task_mem
    def rss_sums(self, sums: int):
        """sums[k] = get_mm_counter_sum(mm, MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES,
        MM_SWAPENTS) = max(0, rss_stat[i].count + every CPU's s32). With the four s32
        counters contiguous (percpu_counter_init_many) one 16-byte read per CPU, else four."""
        b = self.btf
        order = [b.enum_value(None, n)
                 for n in ("MM_ANONPAGES", "MM_FILEPAGES", "MM_SHMEMPAGES", "MM_SWAPENTS")]
        first = min(order)
        pcsize = b.sizeof("struct percpu_counter")
        rss0 = b.offsetof("mm_struct", "rss_stat")
        cnt, ctr = b.offsetof("percpu_counter", "count"), b.offsetof("percpu_counter", "counters")
        cpu, contig, off = self.loop, self.loop + 8, self.loop + 16
        buf = sums + 32
        loop, done, each, nxt = (self.lbl("rss"), self.lbl("rss_done"), self.lbl("rss_each"),
                                 self.lbl("rss_next"))
        self.e(asm.ldx("dw", "r1", "r10", self.mm))
        for k, idx in enumerate(order):
            self.e(asm.ldx("dw", "r2", "r1", rss0 + idx * pcsize + cnt),
                   asm.stx("dw", "r10", "r2", sums + 8 * k))
        self.e(asm.mov("r0", 0), asm.ldx("dw", "r2", "r1", rss0 + first * pcsize + ctr))
        for idx in order:
            self.e(asm.ldx("dw", "r3", "r1", rss0 + idx * pcsize + ctr),
                   asm.alu("sub", "r3", "r2"), asm.jmp("jne", "r3", 4 * (idx - first), f"{each}_c"))
        self.e(asm.mov("r0", 1), asm.label(f"{each}_c"), asm.stx("dw", "r10", "r0", contig),
               asm.st("w", "r10", cpu + 4, 0),
               asm.label(loop), asm.may_goto(done))
        self.old("r5", cpu)
        self.cpu_offset("r5", done)
        self.e(asm.stx("dw", "r10", "r0", off),
               asm.ldx("dw", "r4", "r10", contig), asm.jmp("jeq", "r4", 0, each),
               asm.ldx("dw", "r1", "r10", self.mm),
               asm.ldx("dw", "r3", "r1", rss0 + first * pcsize + ctr),
               asm.alu("add", "r3", "r0"),
               asm.mov("r1", "r10"), asm.alu("add", "r1", buf), asm.mov("r2", 16),
               asm.call(asm.Helper.probe_read_kernel), asm.jmp("jne", "r0", 0, nxt))
        for k, idx in enumerate(order):
            self.e(asm.ldxs("w", "r1", "r10", buf + 4 * (idx - first)),
                   asm.ldx("dw", "r2", "r10", sums + 8 * k), asm.alu("add", "r2", "r1"),
                   asm.stx("dw", "r10", "r2", sums + 8 * k))
        self.e(asm.ja(nxt), asm.label(each))
        for k, idx in enumerate(order):
            skip = self.lbl("rss_k")
            self.e(asm.ldx("dw", "r1", "r10", self.mm),
                   asm.ldx("dw", "r3", "r1", rss0 + idx * pcsize + ctr),
                   asm.jmp("jeq", "r3", 0, skip),
                   asm.ldx("dw", "r5", "r10", off), asm.alu("add", "r3", "r5"),
                   asm.st("w", "r10", buf, 0),
                   asm.mov("r1", "r10"), asm.alu("add", "r1", buf), asm.mov("r2", 4),
                   asm.call(asm.Helper.probe_read_kernel),
                   asm.ldxs("w", "r1", "r10", buf),
                   asm.ldx("dw", "r2", "r10", sums + 8 * k), asm.alu("add", "r2", "r1"),
                   asm.stx("dw", "r10", "r2", sums + 8 * k), asm.label(skip))
        self.e(asm.label(nxt))
        self.old("r1", cpu)
        self.e(asm.alu("add", "r1", 1))
        self.ost(cpu, "r1")
        self.e(asm.ja(loop), asm.label(done))
        for k in range(4):
            pos = self.lbl("rss_pos")
            self.e(asm.ldx("dw", "r1", "r10", sums + 8 * k), asm.jmp("jsge", "r1", 0, pos),
                   asm.st("dw", "r10", sums + 8 * k, 0), asm.label(pos))

    def mm_field(self, dst: str, path: str):
        self.e(asm.ldx("dw", dst, "r10", self.mm))
        self.p.load(dst, Field(dst, path, "mm_struct"))

    def part_mem(self):
        """task_mem, CoreDumping, THP_enabled (only with an mm); then untag_mask (with an
        mm), Threads and SigQ."""
        nomm, done = self.lbl("nomm"), self.lbl("mem_done")
        sums = self.union
        anon, file, shmem, swap = (sums + 8 * k for k in range(4))
        lib = self.tmp  # VmLib and VmSwap survive the first template in tmp
        self.load("r1", "flags")
        self.e(asm.jmp("jset", "r1", PF_KTHREAD, nomm))   # get_task_mm(): NULL for kthreads
        self.load("r1", "mm")
        self.e(asm.jmp("jeq", "r1", 0, nomm), asm.stx("dw", "r10", "r1", self.mm))
        self.rss_sums(sums)

        def kb(i, reg="r0"):
            self.e(asm.alu("lsh", reg, KB_SHIFT))
            self.put(i, reg)
        self.mm_field("r1", "total_vm")
        self.mm_field("r2", "hiwater_vm")
        self.e(asm.jmp("jge", "r1", "r2", f"{nomm}_peak"), asm.mov("r1", "r2"),
               asm.label(f"{nomm}_peak"))
        kb(0, "r1")                                                  # VmPeak
        self.mm_field("r0", "total_vm"); kb(1)                       # VmSize
        self.mm_field("r0", "locked_vm"); kb(2)                      # VmLck
        self.mm_field("r0", "pinned_vm.counter"); kb(3)              # VmPin
        self.e(asm.ldx("dw", "r1", "r10", anon), asm.ldx("dw", "r2", "r10", file),
               asm.alu("add", "r1", "r2"), asm.ldx("dw", "r2", "r10", shmem),
               asm.alu("add", "r1", "r2"), asm.mov("r5", "r1"))
        self.mm_field("r2", "hiwater_rss")
        self.e(asm.mov("r1", "r5"), asm.jmp("jge", "r1", "r2", f"{nomm}_hwm"),
               asm.mov("r1", "r2"), asm.label(f"{nomm}_hwm"))
        kb(4, "r1")                                                  # VmHWM
        self.e(asm.mov("r0", "r5")); kb(5)                           # VmRSS
        for i, slot in ((6, anon), (7, file), (8, shmem)):           # RssAnon/File/Shmem
            self.e(asm.ldx("dw", "r0", "r10", slot)); kb(i)
        self.mm_field("r0", "data_vm"); kb(9)                        # VmData
        self.mm_field("r0", "stack_vm"); kb(10)                      # VmStk
        # text = min(PAGE_ALIGN(end_code) - (start_code & PAGE_MASK), exec_vm << PAGE_SHIFT)
        self.mm_field("r1", "end_code")
        self.mm_field("r2", "start_code")
        self.e(asm.alu("add", "r1", (1 << PAGE_SHIFT) - 1), asm.alu("and", "r1", PAGE_MASK),
               asm.alu("and", "r2", PAGE_MASK), asm.alu("sub", "r1", "r2"))
        self.mm_field("r3", "exec_vm")
        self.e(asm.alu("lsh", "r3", PAGE_SHIFT),
               asm.jmp("jle", "r1", "r3", f"{nomm}_text"), asm.mov("r1", "r3"),
               asm.label(f"{nomm}_text"),
               asm.alu("sub", "r3", "r1"), asm.alu("rsh", "r3", 10),
               asm.stx("dw", "r10", "r3", lib),                      # VmLib
               asm.ldx("dw", "r3", "r10", swap), asm.alu("lsh", "r3", KB_SHIFT),
               asm.stx("dw", "r10", "r3", lib + 8),                  # VmSwap
               asm.alu("rsh", "r1", 10))
        self.put(11, "r1")                                           # VmExe
        names = ("VmPeak", "VmSize", "VmLck", "VmPin", "VmHWM", "VmRSS", "RssAnon",
                 "RssFile", "RssShmem", "VmData", "VmStk", "VmExe")
        lines = [(("" if i % 6 == 0 else " kB\n") + f"{n}:\t", "dec8", i)
                 for i, n in enumerate(names)]
        self.template(lines[:6], " kB\n")
        self.template(lines[6:], " kB\n")
        self.e(asm.ldx("dw", "r0", "r10", lib))
        self.put(0)                                                  # VmLib
        self.mm_field("r0", "pgtables_bytes.counter")
        self.e(asm.alu("rsh", "r0", 10))
        self.put(1)                                                  # VmPTE
        self.e(asm.ldx("dw", "r0", "r10", lib + 8))
        self.put(2)                                                  # VmSwap
        self.mm_field("r0", "hugetlb_usage.counter")
        kb(3)                                                        # HugetlbPages
        self.load("r0", "signal->core_state")                        # CoreDumping
        self.e(asm.neg("r0"), asm.mov("r1", "r0"), asm.neg("r1"),   # numbers, not pointers
               asm.alu("or", "r0", "r1"), asm.alu("rsh", "r0", 63))  # !!core_state
        self.put(4)
        if self.thp:                                                 # THP_enabled
            self.mm_field("r0", "flags.__mm_flags[0]")
            self.e(asm.alu("rsh", "r0", MMF_DISABLE_THP_COMPLETELY), asm.alu("and", "r0", 1),
                   asm.alu("xor", "r0", 1))
        else:
            self.e(asm.mov("r0", 0))
        self.put(5)
        self.template([("VmLib:\t", "dec8", 0), (" kB\nVmPTE:\t", "dec8", 1),
                       (" kB\nVmSwap:\t", "dec8", 2), (" kB\nHugetlbPages:\t", "dec8", 3),
                       (" kB\nCoreDumping:\t", "digit", 4), ("\nTHP_enabled:\t", "digit", 5)],
                      "\n")
        if self.untag:                                               # untag_mask
            self.mm_field("r0", "context.untag_mask")
        else:
            self.e(asm.mov("r0", -1))
        self.put(0)
        self.sig_head(1)
        self.printf("untag_mask:\t0x%lx\n" + SIG_HEAD, *(self.val(i) for i in range(4)))
        self.e(asm.ja(done), asm.label(nomm))
        self.sig_head(0)
        self.printf(SIG_HEAD, *(self.val(i) for i in range(3)))
        self.e(asm.label(done))

    # -- task_sig, task_cap, task_seccomp
    def if_sighand(self, i: int):
        """vals[i] = r0 when lock_task_sighand() would succeed (task->sighand), else 0."""
        ok = self.lbl("sighand")
        self.e(asm.ldx("dw", "r1", "r10", self.hassig), asm.jmp("jne", "r1", 0, ok),
               asm.mov("r0", 0), asm.label(ok))
        self.put(i)

    def sig_head(self, i: int):
        """vals[i..i+2] = Threads, SigQ's two numbers (task_sig)."""
        self.load("r0", "sighand")
        self.e(asm.stx("dw", "r10", "r0", self.hassig))
        self.load("r0", "signal->nr_threads")
        self.if_sighand(i)
        # get_rlimit_value(task_ucounts(p), UCOUNT_RLIMIT_SIGPENDING), an unsigned int here
        rl = self.btf.enum_value("rlimit_type", "UCOUNT_RLIMIT_SIGPENDING")
        self.load("r0", f"real_cred->ucounts->rlimit[{rl}].counter")
        self.e(asm.mov("r0", "r0", alu32=True))
        self.if_sighand(i + 1)
        self.load("r0", f"signal->rlim[{RLIMIT_SIGPENDING}].rlim_cur")
        self.if_sighand(i + 2)

    def sig_collect(self, ign: int, cgt: int):
        """vals[ign], vals[cgt] = SigIgn, SigCgt: collect_sigign_sigcatch() over the 64
        k_sigaction of task->sighand (SIG_IGN 1, SIG_DFL 0; a NULL sighand reads as zeros),
        branch-free: x != 0 is (x | -x) >> 63."""
        b = self.btf
        self.load("r5", "sighand")
        self.e(asm.mov("r3", 0), asm.mov("r4", 0))
        for k in range(64):
            off = b.offsetof("sighand_struct", f"action[{k}].sa.sa_handler")
            self.e(asm.ldx("dw", "r1", "r5", off),
                   asm.neg("r1"), asm.neg("r1"),   # a number (BTF types it as memory)
                   asm.mov("r2", "r1"), asm.alu("xor", "r2", 1),
                   asm.mov("r0", "r2"), asm.neg("r0"), asm.alu("or", "r2", "r0"),
                   asm.alu("rsh", "r2", 63),                               # h != SIG_IGN
                   asm.mov("r0", "r1"), asm.neg("r0"), asm.alu("or", "r1", "r0"),
                   asm.alu("rsh", "r1", 63),                               # h != SIG_DFL
                   asm.alu("and", "r1", "r2"), asm.alu("lsh", "r1", k),
                   asm.alu("or", "r4", "r1"),
                   asm.alu("xor", "r2", 1), asm.alu("lsh", "r2", k), asm.alu("or", "r3", "r2"))
        self.put(ign, "r3")
        self.put(cgt, "r4")

    def part_sig_caps(self):
        for i, path in ((0, "pending.signal.sig[0]"),
                        (1, "signal->shared_pending.signal.sig[0]"),
                        (2, "blocked.sig[0]")):
            self.load("r0", path)
            self.if_sighand(i)
        self.sig_collect(3, 4)
        self.template([(("" if i == 0 else "\n") + f"{n}:\t", "hex16", i) for i, n in
                       enumerate(("SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt"))], "\n")
        for i, c in enumerate(("inheritable", "permitted", "effective", "bset", "ambient")):
            self.load("r0", f"real_cred->cap_{c}.val")
            self.put(i)
        self.template([(("" if i == 0 else "\n") + f"{n}:\t", "hex16", i) for i, n in
                       enumerate(("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"))], "\n")

    def _flag_strings(self, slot: int, cases, default: str):
        """vals[slot] = the string of the first (bit, string) set in atomic_flags."""
        done = self.lbl("spec")
        self.load("r2", "atomic_flags")
        for bit, s in cases:
            nxt = self.lbl("spec_next")
            self.e(asm.jmp("jset", "r2", 1 << bit, f"{nxt}_hit"), asm.ja(nxt),
                   asm.label(f"{nxt}_hit"))
            self.rodata("r1", s)
            self.e(asm.ja(done), asm.label(nxt))
        self.rodata("r1", default)
        self.e(asm.label(done))
        self.put(slot, "r1")

    def spec_ssb(self, slot: int):
        """ssb_prctl_get() in the prctl/seccomp modes as task_seccomp() words it;
        PR_SPEC_PRCTL | PR_SPEC_DISABLE_NOEXEC has no case there: "vulnerable"."""
        if self.ssb != PER_TASK:
            self.rodata("r1", self.ssb)
            self.put(slot, "r1")
            return
        self._flag_strings(slot, ((PFA_SPEC_SSB_FORCE_DISABLE, "thread force mitigated"),
                                  (PFA_SPEC_SSB_NOEXEC, "vulnerable"),
                                  (PFA_SPEC_SSB_DISABLE, "thread mitigated")),
                           "thread vulnerable")

    def spec_ib(self, slot: int):
        """ib_prctl_get() when is_spec_ib_user_controlled()."""
        if self.ib != PER_TASK:
            self.rodata("r1", self.ib)
            self.put(slot, "r1")
            return
        self._flag_strings(slot, ((PFA_SPEC_IB_FORCE_DISABLE, "conditional force disabled"),
                                  (PFA_SPEC_IB_DISABLE, "conditional disabled")),
                           "conditional enabled")

    # -- Cpus_allowed / Mems_allowed
    def nr_cpu_ids(self):
        """nrcpu = nr_cpu_ids: the per-CPU lookup is NULL exactly from nr_cpu_ids on; a
        binary search over [0, NR_CPUS)."""
        lo, hi = self.loop, self.loop + 8
        self.e(asm.st("w", "r10", lo + 4, 0), asm.st("w", "r10", hi + 4, self.cpumax))
        for _ in range((self.cpumax - 1).bit_length()):
            miss, nxt = self.lbl("nrcpu_miss"), self.lbl("nrcpu_next")
            self.old("r2", lo)
            self.old("r3", hi)
            self.e(asm.alu("add", "r2", "r3"), asm.alu("rsh", "r2", 1),
                   asm.stx("dw", "r10", "r2", self.tmp))
            self.cpu_offset("r2", miss)
            self.e(asm.ldx("dw", "r2", "r10", self.tmp))
            self.ost(lo, "r2")
            self.e(asm.ja(nxt), asm.label(miss), asm.ldx("dw", "r2", "r10", self.tmp))
            self.ost(hi, "r2")
            self.e(asm.label(nxt))
        self.old("r1", lo)
        self.e(asm.alu("add", "r1", 1))
        self.ost(self.nrcpu, "r1")

    def cpus_hex(self, mask: int, hexbuf: int, slot: int):
        """mask = task->cpus_mask cut to nr_cpu_ids bits; vals[slot] = its "%*pb"
        (bitmap_string): 32-bit chunks from the top, comma-separated, the first with
        DIV_ROUND_UP(nr_bits % 32 or 32, 4) hex digits, the others 8. Every chunk is written
        at a fixed place of hexbuf; the string starts at the first printed digit."""
        base = self.btf.offsetof("task_struct", "cpus_mask")
        nch = self.cpuchunks
        for k in range(self.cpuwords):
            keep, zero = self.lbl("cw_keep"), self.lbl("cw_zero")
            self.e(asm.ldx("dw", "r1", self.t, base + 8 * k))
            self.old("r2", self.nrcpu)
            self.e(asm.alu("sub", "r2", 64 * k),
                   asm.jmp("jsge", "r2", 64, keep), asm.jmp("jsle", "r2", 0, zero),
                   asm.mov("r3", 1), asm.alu("lsh", "r3", "r2"), asm.alu("sub", "r3", 1),
                   asm.alu("and", "r1", "r3"), asm.ja(keep),
                   asm.label(zero), asm.mov("r1", 0),
                   asm.label(keep), asm.stx("dw", "r10", "r1", mask + 8 * k))
        for c in range(nch):
            pos = hexbuf + (nch - 1 - c) * 9
            self.e(asm.ldx("w", "r1", "r10", mask + 4 * c))   # little-endian halves
            for j in range(8):
                self.e(asm.mov("r3", "r1"), asm.alu("rsh", "r3", 28 - 4 * j),
                       asm.alu("and", "r3", 15), asm.mov("r4", 9), asm.alu("sub", "r4", "r3"),
                       asm.alu("rsh", "r4", 63), asm.alu("mul", "r4", ord("a") - ord("9") - 1),
                       asm.alu("add", "r3", "r4"), asm.alu("add", "r3", ord("0")),
                       asm.stx("b", "r10", "r3", pos + j))
            self.e(asm.st("b", "r10", pos + 8, ord(",") if c else 0))
        # start = (nch - 1 - top) * 9 + 8 - width; top = (nr - 1) / 32,
        # width = (nr - 32 * top + 3) / 4
        self.old("r1", self.nrcpu)
        self.e(asm.alu("sub", "r1", 1), asm.alu("rsh", "r1", 5))
        self.old("r2", self.nrcpu)
        self.e(asm.mov("r3", "r1"), asm.alu("lsh", "r3", 5), asm.alu("sub", "r2", "r3"),
               asm.alu("add", "r2", 3), asm.alu("rsh", "r2", 2),
               asm.mov("r3", nch - 1), asm.alu("sub", "r3", "r1"), asm.alu("mul", "r3", 9),
               asm.alu("add", "r3", 8), asm.alu("sub", "r3", "r2"),
               asm.alu("and", "r3", 127),
               asm.mov("r1", "r10"), asm.alu("add", "r1", hexbuf), asm.alu("add", "r1", "r3"))
        self.put(slot, "r1")

    def ranges(self, state: int, base_slot: int, nbits_slot: int, tail: str, *tail_args):
        """%*pbl (bitmap_list_string): "a" or "a-b" for each run of set bits below nbits,
        comma-separated, then tail. The words are read from *base_slot + 8k; nbits is
        opaque at nbits_slot. A run is printed when the next one is found, so the last (for
        most masks the only) run goes out with the tail in one bpf_seq_printf."""
        pos, cur, start, inrun, pfx, pend, pstart, plast = (state + 8 * k for k in range(8))
        loop, end, have, inr, nxt = (self.lbl(n) for n in
                                     ("rl", "rl_end", "rl_have", "rl_in", "rl_next"))

        def close_run():
            """pending ← [start, r1 - 1]; the previous pending run is printed first."""
            skip = self.lbl("rl_close")
            self.e(asm.alu("sub", "r1", 1))
            self.ost(self.tmp, "r1")
            self.e(asm.ldx("dw", "r2", "r10", pend), asm.jmp("jeq", "r2", 0, skip))
            print_pending("")
            self.rodata("r1", ",")
            self.e(asm.stx("dw", "r10", "r1", pfx), asm.label(skip))
            self.old("r1", start)
            self.ost(pstart, "r1")
            self.old("r1", self.tmp)
            self.ost(plast, "r1")
            self.e(asm.st("dw", "r10", pend, 1), asm.st("dw", "r10", inrun, 0))

        def print_pending(text, *args):
            single, done = self.lbl("rl_single"), self.lbl("rl_printed")
            self.old("r1", pstart)
            self.old("r2", plast)
            self.e(asm.jmp("jeq", "r1", "r2", single))
            self.e(asm.ldx("dw", "r3", "r10", pfx), self.put_insn(0, "r3"),
                   self.put_insn(1, "r1"), self.put_insn(2, "r2"))
            self.printf("%s%u-%u" + text, *(self.val(i) for i in range(3)), *args)
            self.e(asm.ja(done), asm.label(single),
                   asm.ldx("dw", "r3", "r10", pfx), self.put_insn(0, "r3"),
                   self.put_insn(1, "r1"))
            self.printf("%s%u" + text, *(self.val(i) for i in range(2)), *args)
            self.e(asm.label(done))

        self.rodata("r1", "")
        self.e(asm.stx("dw", "r10", "r1", pfx), asm.st("w", "r10", pos + 4, 0),
               asm.st("dw", "r10", inrun, 0), asm.st("dw", "r10", pend, 0),
               asm.st("dw", "r10", cur, 0),
               asm.label(loop), asm.may_goto(end))
        self.old("r1", pos)
        self.old("r2", nbits_slot)
        self.e(asm.jmp("jge", "r1", "r2", end),
               asm.mov("r3", "r1"), asm.alu("and", "r3", 63), asm.jmp("jne", "r3", 0, have),
               asm.alu("rsh", "r1", 6), asm.alu("lsh", "r1", 3),
               asm.ldx("dw", "r3", "r10", base_slot), asm.alu("add", "r3", "r1"),
               asm.mov("r1", "r10"), asm.alu("add", "r1", cur), asm.mov("r2", 8),
               asm.call(asm.Helper.probe_read_kernel),
               # a whole word of ones inside a run: skip it
               asm.ldx("dw", "r4", "r10", cur), asm.ldx("dw", "r5", "r10", inrun),
               asm.jmp("jeq", "r5", 0, have), asm.jmp("jne", "r4", -1, have))
        self.old("r1", pos)
        self.e(asm.alu("add", "r1", 64))
        self.ost(pos, "r1")
        self.e(asm.ja(loop), asm.label(have))
        self.old("r1", pos)
        self.e(asm.ldx("dw", "r4", "r10", cur),
               asm.mov("r3", "r1"), asm.alu("and", "r3", 63), asm.alu("rsh", "r4", "r3"),
               asm.ldx("dw", "r5", "r10", inrun), asm.jmp("jne", "r5", 0, inr),
               # outside a run: the rest of the word empty → the next word
               asm.jmp("jne", "r4", 0, f"{have}_bit"),
               asm.alu("or", "r1", 63), asm.alu("add", "r1", 1))
        self.ost(pos, "r1")
        self.e(asm.ja(loop),
               asm.label(f"{have}_bit"), asm.alu("and", "r4", 1), asm.jmp("jeq", "r4", 0, nxt))
        self.ost(start, "r1")
        self.e(asm.st("dw", "r10", inrun, 1), asm.ja(nxt),
               asm.label(inr), asm.alu("and", "r4", 1), asm.jmp("jne", "r4", 0, nxt))
        close_run()
        self.e(asm.label(nxt))
        self.old("r1", pos)
        self.e(asm.alu("add", "r1", 1))
        self.ost(pos, "r1")
        self.e(asm.ja(loop), asm.label(end),
               asm.ldx("dw", "r5", "r10", inrun), asm.jmp("jeq", "r5", 0, f"{end}_tail"))
        self.old("r1", pos)
        self.old("r2", nbits_slot)
        self.e(asm.jmp("jle", "r1", "r2", f"{end}_cap"), asm.mov("r1", "r2"),
               asm.label(f"{end}_cap"))
        close_run()
        none, done = self.lbl("rl_none"), self.lbl("rl_done")
        self.e(asm.label(f"{end}_tail"),
               asm.ldx("dw", "r2", "r10", pend), asm.jmp("jeq", "r2", 0, none))
        print_pending(tail, *tail_args)
        self.e(asm.ja(done), asm.label(none))
        self.printf(tail, *tail_args)
        self.e(asm.label(done))

    def part_cpus_mems(self):
        b = self.btf
        mask, hexbuf = self.union, self.union + 8 * self.cpuwords
        self.nr_cpu_ids()
        self.load("r0", "atomic_flags")
        self.e(asm.alu("and", "r0", 1 << PFA_NO_NEW_PRIVS))
        self.put(0)
        self.load("r0", "seccomp.mode")
        self.put(1)
        self.load("r0", "seccomp.filter_count.counter")
        self.put(2)
        self.spec_ssb(3)
        self.spec_ib(4)
        self.cpus_hex(mask, hexbuf, 5)
        self.printf("NoNewPrivs:\t%u\nSeccomp:\t%u\nSeccomp_filters:\t%u\n"
                    "Speculation_Store_Bypass:\t%s\nSpeculationIndirectBranch:\t%s\n"
                    "Cpus_allowed:\t%s\nCpus_allowed_list:\t", *(self.val(i) for i in range(6)))
        state = self.union + 8 * self.cpuwords     # the hex text is out: its place is free
        self.e(asm.mov("r1", "r10"), asm.alu("add", "r1", mask),
               asm.stx("dw", "r10", "r1", self.misc))
        self.ranges(state, self.misc, self.nrcpu, "\n")
        # Mems_allowed: MAX_NUMNODES bits (nodemask_pr_args), full 8-digit chunks
        nw = self.nodebits // 64
        base = b.offsetof("task_struct", "mems_allowed")
        slow, done = self.lbl("mems_slow"), self.lbl("mems_done")
        self.e(asm.mov("r1", 0))
        for k in range(1, nw):
            self.e(asm.ldx("dw", "r2", self.t, base + 8 * k), asm.alu("or", "r1", "r2"))
        self.e(asm.jmp("jne", "r1", 0, slow))
        # nodes below 64 only: the zero chunks are constant, the list stops at bit 64
        self.write("Mems_allowed:\t" + "00000000," * (2 * nw - 2))
        self.e(asm.ldx("dw", "r1", self.t, base), asm.mov("r2", "r1"), asm.alu("rsh", "r2", 32),
               asm.mov("r1", "r1", alu32=True))
        self.put(0, "r2")
        self.put(1, "r1")
        self.hex8_pair()
        self.e(asm.mov("r1", 64))
        self.ost(self.tmp + 8, "r1")
        self.e(asm.ja(done), asm.label(slow))
        self.write("Mems_allowed:\t")
        words = list(range(nw - 1, -1, -1))
        for g in range(0, nw, MAX_ARGS // 2):
            grp = words[g:g + MAX_ARGS // 2]
            for j, k in enumerate(grp):
                self.e(asm.ldx("dw", "r1", self.t, base + 8 * k), asm.mov("r2", "r1"),
                       asm.alu("rsh", "r2", 32), asm.mov("r1", "r1", alu32=True))
                self.put(2 * j, "r2")
                self.put(2 * j + 1, "r1")
            self.printf(("," if g else "") + ",".join(["%08x,%08x"] * len(grp)),
                        *(self.val(i) for i in range(2 * len(grp))))
        self.write("\nMems_allowed_list:\t")
        self.e(asm.mov("r1", self.nodebits))
        self.ost(self.tmp + 8, "r1")
        self.e(asm.label(done),
               asm.mov("r1", self.t), asm.alu("add", "r1", base),
               asm.stx("dw", "r10", "r1", self.misc))
        self.ranges(self.union, self.misc, self.tmp + 8,
                    "\nvoluntary_ctxt_switches:\t%lu\nnonvoluntary_ctxt_switches:\t%lu\n",
                    Field(self.t, "nvcsw"), Field(self.t, "nivcsw"))

    def hex8_pair(self):
        """"hhhhhhhh,hhhhhhhh\\nMems_allowed_list:\\t" of vals[0], vals[1] (32-bit each)."""
        text = b"00000000,00000000\nMems_allowed_list:\t"
        padded = text + b"\0" * (-len(text) % 8)
        for k in range(0, len(padded), 8):
            self.e(asm.ld_imm64("r1", int.from_bytes(padded[k:k + 8], "little")),
                   asm.stx("dw", "r10", "r1", self.union + k))
        for i, pos in ((0, 0), (1, 9)):
            self.e(asm.ldx("dw", "r1", "r10", self.vals + 8 * i))
            for j in range(8):
                self.e(asm.mov("r3", "r1"), asm.alu("rsh", "r3", 28 - 4 * j),
                       asm.alu("and", "r3", 15), asm.mov("r4", 9), asm.alu("sub", "r4", "r3"),
                       asm.alu("rsh", "r4", 63), asm.alu("mul", "r4", ord("a") - ord("9") - 1),
                       asm.alu("add", "r3", "r4"), asm.alu("add", "r3", ord("0")),
                       asm.stx("b", "r10", "r3", self.union + pos + j))
        self.write_stack(self.union, len(text))

    def emit(self):
        self.percpu_setup()
        self.reader_ns()
        self.part_name_to_uid()
        self.part_gid_to_kthread()
        self.part_mem()
        self.part_sig_caps()
        self.part_cpus_mems()


SIG_HEAD = "Threads:\t%u\nSigQ:\t%u/%lu\n"


def _has_member(btf, struct: str, path: str) -> bool:
    try:
        btf.member(struct, path)
        return True
    except (BTFError, KeyError):
        return False


def _build(btf, *, per_tid: bool, name: str, ssb: str | None = None,
           ib: str | None = None) -> ProgramSpec:
    if ssb is None or ib is None:
        s, i = speculation_modes()
        ssb = s if ssb is None else ssb
        ib = i if ib is None else ib
    p = IterProgram("task", btf=btf, name=name)
    t = p.ctx_ptr("task")
    p.exit_if_null(t)
    if not per_tid:  # <pid>/status: the leader, the first task the iterator yields
        p.emit(asm.ldx("dw", "r1", p.meta, btf.offsetof("bpf_iter_meta", "seq_num")),
               asm.jmp("jeq", "r1", 0, "__status_first"), asm.mov("r0", 0), asm.exit_insn(),
               asm.label("__status_first"))
    # an untrusted alias of the task (bpf_rdonly_cast): loads stay fault-safe, and the
    # verifier no longer searches all of BTF for a "__safe_trusted" type at each pointer
    # loaded from a trusted task_struct (btf_nested_type_is_trusted): 4 s → 0.1 s per load
    p.emit(asm.mov("r1", t), asm.mov("r2", btf.find("task_struct", Kind.STRUCT).id),
           asm.call_kfunc(btf.find("bpf_rdonly_cast", Kind.FUNC).id), asm.mov(t, "r0"))
    _Status(p, t, ssb, ib,
            thp=bool(btf.find_all("hugepage_madvise", Kind.FUNC)),
            untag=_has_member(btf, "mm_context_t", "untag_mask")).emit()
    return p.build()


def build_pid(btf) -> ProgramSpec:
    return _build(btf, per_tid=False, name="status")


def build_tid(btf) -> ProgramSpec:
    return _build(btf, per_tid=True, name="tid_status")


FILES = [
    IterSpec("status", "task", build_pid, per="pid", nonempty=True,
             doc="/proc/<pid>/status (fs/proc/array.c proc_pid_status), the group leader"),
    IterSpec("status", "task", build_tid, per="tid", nonempty=True,
             doc="/proc/<pid>/task/<tid>/status (fs/proc/array.c proc_pid_status)"),
]
