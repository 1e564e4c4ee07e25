"""<pid>/stat and <pid>/task/<tid>/stat — /proc's stat line (fs/proc/array.c do_task_stat).

The line, as the running 6.18 kernel prints it with seq_put_decimal_* (52 fields):

    pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
    utime stime cutime cstime priority nice num_threads 0 starttime vsize rss rsslim
    startcode endcode startstack kstkesp kstkeip signal blocked sigignore sigcatch wchan
    0 0 exit_signal processor rt_priority policy delayacct_blkio_ticks guest_time
    cguest_time start_data end_data start_brk arg_start arg_end env_start env_end exit_code

made here by five bpf_seq_printf calls (12 + 12 + 12 + 12 + 4 arguments; fields 21, 36 and
37 are always 0 and sit in the formats). `<pid>/stat` is proc_tgid_stat (whole = 1): the
iterator linked with pid= yields every thread of the process and the line is printed only for
the thread group leader (pid == tgid; the iterator yields it first); `<pid>/task/<tid>/stat`
is proc_tid_stat (whole = 0) on the one task the iterator linked with tid= yields. A pid that
is no thread group id gives an empty <pid>/stat (the iterator yields nothing for it).

Field by field, with the kernel function each one mirrors (every offset from BTF):
- pid: task->pid. comm: proc_task_name via _proc.task_name. state: task_state_index via
  _proc.task_state.
- ppid, pgrp, session: pid_nr_ns of real_parent->signal->pids[PIDTYPE_TGID],
  signal->pids[PIDTYPE_PGID], signal->pids[PIDTYPE_SID] (task_tgid_nr_ns, task_pgrp_nr_ns,
  task_session_nr_ns); tty_nr = new_encode_dev(tty_devnum(signal->tty)), tpgid =
  pid_nr_ns(tty->ctrl.pgrp); num_threads = signal->nr_threads; sigignore/sigcatch from
  sighand->action[] (collect_sigign_sigcatch, first word & 0x7fffffff); rsslim =
  signal->rlim[RLIMIT_RSS].rlim_cur; for the pid file exit_code = signal->group_exit_code
  when signal->flags has SIGNAL_GROUP_EXIT or SIGNAL_STOP_STOPPED. All of these come from the
  kernel's lock_task_sighand() block: a task whose sighand is already gone prints the
  kernel's defaults (ppid 0, pgrp -1, session -1, tty_nr 0, tpgid -1, 0 threads, ...).
- minflt, majflt, guest_time: the task's own (tid file); for the pid file signal->min_flt,
  maj_flt, gtime (dead threads) plus every live thread's, walking signal->thread_head like
  __for_each_thread (a may_goto loop; each thread is reached through bpf_rdonly_cast).
  cminflt, cmajflt, cutime, cstime, cguest_time: signal->c*. Times go through
  nsec_to_clock_t (ns / 10^7: USER_HZ 100).
- utime, stime: task_cputime_adjusted (tid) / thread_group_cputime_adjusted (pid), i.e.
  cputime_adjust(curr, prev): curr = {utime, stime, se.sum_exec_runtime} of the task, or
  signal->{utime, stime, sum_sched_runtime} plus every live thread's (thread_group_cputime);
  prev = task->prev_cputime or signal->prev_cputime. The scaling stime * rtime /
  (stime + utime) is mul_u64_u64_div_u64, done exactly: a 128-bit product and a 128/64-bit
  long division (mul_div_u64 below).
- priority = prio - MAX_RT_PRIO, nice = static_prio - 120 (task_prio, task_nice).
- starttime = nsec_to_clock_t(timens_add_boottime_ns(start_boottime)): the boot-time offset
  of the reading task's time namespace (bpf_get_current_task_btf()->nsproxy->time_ns).
- vsize = total_vm << PAGE_SHIFT, rss = get_mm_rss = the sum over MM_FILEPAGES,
  MM_ANONPAGES, MM_SHMEMPAGES of percpu_counter_read_positive(&mm->rss_stat[i]) (the
  counter's central count clamped at 0, what get_mm_counter reads; /proc/<pid>/status uses
  the exact per-CPU sum instead), mm->start_code ... env_end: all 0 without an mm
  (get_task_mm: NULL for kernel threads even when they borrowed one, and after exit_mm).
- kstkesp, kstkeip: 0, except for a task with an mm that is exiting or dumping core
  (PF_EXITING | PF_DUMPCORE | PF_POSTCOREDUMP) and still has its stack: then the user sp/ip
  from bpf_task_pt_regs (KSTK_ESP/KSTK_EIP).
- signal, blocked: pending.signal.sig[0] and blocked.sig[0], & 0x7fffffff.
- wchan: !task_is_running (__state != TASK_RUNNING), for the pid file only with fewer than
  two threads. exit_signal, processor (thread_info.cpu), rt_priority, policy: the task's.
  delayacct_blkio_ticks: nsec_to_clock_t(delays->blkio_delay), 0 without task->delays.

Where this differs from /proc, and why:
- `permitted` (ptrace_may_access(PTRACE_MODE_READ_FSCREDS)) is taken as true: the program
  runs for the iterator's reader, the daemon (root, CAP_SYS_PTRACE), not for the process that
  reads the FUSE file. An unprivileged reader of another user's process gets from /proc
  startcode = endcode = 1 and 0 for startstack, kstkesp, kstkeip, wchan, start_data ...
  env_end and exit_code: build_pid_unpermitted / build_tid_unpermitted make exactly that line,
  for the FUSE layer to serve to readers that fail the ptrace check.
- pid numbers are those of the initial pid namespace (pid->numbers[0].nr), like every iterfs
  task file; /proc prints them in the namespace of its mount.
- utime/stime: cputime_adjust() is stateful. Under prev->lock it clamps the scaled values so
  that neither goes below prev (the last values printed), then STORES the result into prev.
  A BPF program can read prev but cannot write kernel memory, so this file prints exactly
  what /proc would print at that instant (same curr, same prev, same arithmetic) without
  recording it. Consequences: two reads of this file with no /proc read between them each
  compare against the same old prev, so when the stime/utime ratio of a running task drops,
  a later read here can show a smaller stime (or utime) than an earlier read here, where
  /proc would have held it at the earlier value; and prev is read without prev->lock (a
  racing /proc reader can be seen half-written). For a task that has not run since the last
  /proc read of the same prev (rtime <= prev sum), the output is prev itself, exact.
- The sums (thread_group_cputime, the fault counters) are plain reads without
  signal->stats_lock: signal's counters are read first, then the thread list, so a thread
  that exits in between (__exit_signal moves its counters into signal and unhashes it) is
  missed; /proc's seqlock retry avoids that.
  thread_group_cputime also charges the reader's pending runtime when it reads its own
  process (task_sched_runtime(current)); this file does not.
- timespec64_to_ns saturates absurd time-namespace offsets (>= KTIME_SEC_MAX); not here.
- comm: proc_task_name formats into a 64-byte buffer; _proc.task_name prints a kernel
  thread's full_name or a workqueue worker's name + desc unbounded (only names of 64 bytes
  or more would differ).
Fields that change between two reads of /proc itself (state, times, faults, rss, processor,
wchan of running tasks) can of course differ between this file and any one /proc read.
"""

from __future__ import annotations


from iterfs import asm
from iterfs.catalog import IterSpec
from iterfs.dsl.program import MAX_PRINTF_ARGS, Field, IterProgram, ProgramSpec, count_conversions

from ._proc import task_name, task_state

# the five bpf_seq_printf formats (do_task_stat's seq_put_decimal_* sequence)
FORMATS = (
    "%d (%s%s%s%s) %c %d %d %d %d %d %u",                    # pid .. flags
    " %lu %lu %lu %lu %llu %llu %lld %lld %d %d %d 0 %llu",  # minflt .. starttime
    " %lu %lu %lu %lu %lu %lu %lu %lu %lu %lu %lu %lu",      # vsize .. sigcatch
    " %lu 0 0 %d %d %u %u %llu %llu %lld %lu %lu %lu %lu",   # wchan .. arg_start
    " %lu %lu %lu %d\n",                                     # arg_end .. exit_code
)

# include/linux/sched.h
PF_EXITING, PF_POSTCOREDUMP, PF_DUMPCORE, PF_KTHREAD = 0x4, 0x8, 0x200, 0x00200000
MAX_RT_PRIO, DEFAULT_PRIO = 100, 120           # task_prio, task_nice (PRIO_TO_NICE)
# include/linux/sched/signal.h
SIGNAL_STOP_STOPPED, SIGNAL_GROUP_EXIT = 0x1, 0x4
# include/uapi/asm-generic/resource.h, include/uapi/asm-generic/signal-defs.h
RLIMIT_RSS = 5
SIG_IGN = 1
PAGE_SHIFT = 12                                # x86-64
NSEC_PER_CLOCK_T = 10_000_000                  # NSEC_PER_SEC / USER_HZ (nsec_to_clock_t)
MASK_SIG0 = 0x7FFFFFFF                         # "The signal information here is obsolete"
MINORBITS = 20                                 # include/linux/kdev_t.h (MKDEV)


def mul_div_u64(c_slot: int, label: str) -> list:
    """r2 = a * b / c for r1 = a, r2 = b, c = *(u64 *)(r10 + c_slot), exact (floor), for
    a <= c (then the quotient fits 64 bits): mul_u64_u64_div_u64 of x86-64 (mulq; divq).
    Clobbers r0-r5 (r1 ends as the remainder when the long division runs).

        a * b = hi:lo from four 32x32-bit products; hi == 0: one 64-bit div;
        else 64 steps of shift-subtract on hi:lo, the quotient bits shifting into lo
        (hi < c all along, so a carry out of hi means "subtract")."""
    out = [
        asm.mov("r0", "r1", alu32=True), asm.alu("rsh", "r1", 32),   # a0, a1
        asm.mov("r4", "r2", alu32=True), asm.alu("rsh", "r2", 32),   # b0, b1
        asm.mov("r5", "r0"), asm.alu("mul", "r5", "r4"),             # p00 = a0 b0
        asm.alu("mul", "r4", "r1"),                                  # p10 = a1 b0
        asm.alu("mul", "r1", "r2"),                                  # p11 = a1 b1
        asm.alu("mul", "r0", "r2"),                                  # p01 = a0 b1
        asm.mov("r2", "r5"), asm.alu("rsh", "r2", 32),               # mid = p00 >> 32
        asm.mov("r3", "r0", alu32=True), asm.alu("add", "r2", "r3"),  # + lo32(p01)
        asm.mov("r3", "r4", alu32=True), asm.alu("add", "r2", "r3"),  # + lo32(p10)
        asm.alu("rsh", "r0", 32), asm.alu("add", "r1", "r0"),        # hi = p11 + p01 >> 32
        asm.alu("rsh", "r4", 32), asm.alu("add", "r1", "r4"),        #    + p10 >> 32
        asm.mov("r3", "r2"), asm.alu("rsh", "r3", 32), asm.alu("add", "r1", "r3"),  # + carry
        asm.alu("lsh", "r2", 32), asm.mov("r5", "r5", alu32=True),
        asm.alu("or", "r2", "r5"),                                   # lo
        asm.ldx("dw", "r3", "r10", c_slot),
        asm.jmp("jne", "r1", 0, f"{label}_long"),
        asm.alu("div", "r2", "r3"), asm.ja(f"{label}_done"),
        asm.label(f"{label}_long"),
    ]
    for i in range(64):
        sub, nxt = f"{label}_sub{i}", f"{label}_next{i}"
        out += [asm.mov("r4", "r1"), asm.alu("rsh", "r4", 63),      # the bit shifted out of hi
                asm.alu("lsh", "r1", 1),
                asm.mov("r5", "r2"), asm.alu("rsh", "r5", 63), asm.alu("or", "r1", "r5"),
                asm.alu("lsh", "r2", 1),
                asm.jmp("jne", "r4", 0, sub), asm.jmp("jlt", "r1", "r3", nxt),
                asm.label(sub), asm.alu("sub", "r1", "r3"), asm.alu("or", "r2", 1),
                asm.label(nxt)]
    out.append(asm.label(f"{label}_done"))
    return out


def cputime_adjust(slot, label: str) -> list:
    """r5, r4 = the utime and stime (ns) that kernel/sched/cputime.c cputime_adjust(curr,
    prev) returns, without storing them into prev (a BPF program cannot). curr is in the
    stack slots slot["rtime"] (sum_exec_runtime), slot["stime"], slot["utime"]; prev in
    slot["prev_stime"], slot["prev_utime"]; slot["total"] is scratch. Clobbers r0-r5.

        if prev.stime + prev.utime >= rtime: return prev
        stime = 0 if !stime, rtime if !utime, else min(stime * rtime / (stime + utime), rtime)
        stime = max(stime, prev.stime); utime = rtime - stime
        if utime < prev.utime: utime = prev.utime; stime = rtime - utime"""
    def get(reg: str, name: str):
        return asm.ldx("dw", reg, "r10", slot[name])

    prev, update, store, s = (f"{label}_{n}" for n in ("prev", "update", "store", "s"))
    return [
        get("r1", "prev_stime"), get("r2", "prev_utime"), asm.alu("add", "r1", "r2"),
        get("r3", "rtime"), asm.jmp("jge", "r1", "r3", prev),
        get("r1", "stime"), get("r2", "utime"),
        asm.mov("r4", 0), asm.jmp("jeq", "r1", 0, update),        # stime == 0
        asm.mov("r4", "r3"), asm.jmp("jeq", "r2", 0, update),     # utime == 0
        asm.alu("add", "r2", "r1"), asm.stx("dw", "r10", "r2", slot["total"]),
        get("r2", "rtime"), *mul_div_u64(slot["total"], f"{label}_md"), asm.mov("r4", "r2"),
        get("r3", "rtime"), asm.jmp("jle", "r4", "r3", update), asm.mov("r4", "r3"),
        asm.label(update),
        get("r1", "prev_stime"), asm.jmp("jge", "r4", "r1", s), asm.mov("r4", "r1"),
        asm.label(s),
        get("r3", "rtime"), asm.mov("r5", "r3"), asm.alu("sub", "r5", "r4"),
        get("r1", "prev_utime"), asm.jmp("jge", "r5", "r1", store),
        asm.mov("r5", "r1"), asm.mov("r4", "r3"), asm.alu("sub", "r4", "r5"), asm.ja(store),
        asm.label(prev), get("r4", "prev_stime"), get("r5", "prev_utime"),
        asm.label(store),
    ]


class _Stat:
    """One do_task_stat program: values in stack slots, the task in one callee-saved
    register (self.t), the other (self.x) scratch across helper calls; the line goes out in
    five bpf_seq_printf calls from one 12-slot data array."""

    def __init__(self, btf, whole: bool, permitted: bool = True):
        self.whole, self.permitted = whole, permitted
        name = "proc_tgid_stat" if whole else "proc_tid_stat"
        self.p = p = IterProgram("task", btf=btf, name=name)
        self.b = btf
        self.out = p.label_name("out")
        self.data = p.stack(8 * MAX_PRINTF_ARGS)
        # values computed once and printed later
        names = ["nthreads", "rsslim", "sigign", "sigcatch", "exit_code", "wchan",
                 "min_flt", "maj_flt", "gtime", "utime", "stime", "rtime",
                 "prev_stime", "prev_utime", "total"]
        self.slot = {n: p.stack(8) for n in names}

    # --- small emitters ---
    def emit(self, *insns) -> None:
        self.p.emit(*insns)

    def d(self, i: int) -> int:
        return self.data + 8 * i

    def put(self, i: int, reg: str) -> None:
        self.emit(asm.stx("dw", "r10", reg, self.d(i)))

    def put_imm(self, i: int, value: int) -> None:
        self.emit(asm.st("dw", "r10", self.d(i), value))

    def save(self, name: str, reg: str) -> None:
        self.emit(asm.stx("dw", "r10", reg, self.slot[name]))

    def fetch(self, reg: str, name: str) -> None:
        self.emit(asm.ldx("dw", reg, "r10", self.slot[name]))

    def load(self, dst: str, base: str, struct: str, path: str) -> None:
        self.p.load(dst, Field(base, path, struct=struct))

    def task(self, dst: str, path: str) -> None:
        self.load(dst, self.t, "task_struct", path)

    def signal(self, dst: str, path: str) -> None:
        """dst = task->signal-><path> (task->signal stays valid while the task is held)."""
        self.task(dst, "signal->" + path)

    def clock_t(self, reg: str) -> None:
        self.emit(asm.alu("div", reg, NSEC_PER_CLOCK_T))

    def printf(self, fmt: str, n: int) -> None:
        """bpf_seq_printf(seq, fmt, sizeof(fmt), data, 8 n) with the data array filled."""
        if count_conversions(fmt) != n or n > MAX_PRINTF_ARGS:
            raise ValueError(f"format {fmt!r} does not take {n} arguments")
        p = self.p
        self.emit(asm.ldx("dw", "r1", p.meta, self.b.offsetof("bpf_iter_meta", "seq")),
                  p.rodata_ptr("r2", p.string(fmt)), asm.mov("r3", len(fmt) + 1),
                  asm.mov("r4", "r10"), asm.alu("add", "r4", self.data), asm.mov("r5", 8 * n),
                  asm.call(asm.Helper.seq_printf))

    def mm(self, skip: str) -> str:
        """r1 = get_task_mm(task) without the reference: jump to skip when there is none."""
        self.task("r1", "flags")
        self.emit(asm.jmp("jset", "r1", PF_KTHREAD, skip))
        self.p.ptr(Field(self.t, "mm", struct="task_struct"), dst="r1")
        self.emit(asm.jmp("jeq", "r1", 0, skip))
        return "r1"

    def mm_fields(self, first: int, fields: list[str]) -> None:
        """data[first..] = mm->field for each field, 0 without an mm (or permission)."""
        skip = self.p.label_name("nomm")
        for i in range(len(fields)):
            self.put_imm(first + i, 0)
        if not self.permitted:
            return
        mm = self.mm(skip)
        for i, f in enumerate(fields):
            self.load("r2", mm, "mm_struct", f)
            self.put(first + i, "r2")
        self.emit(asm.label(skip))

    # --- the line ---
    def build(self) -> ProgramSpec:
        p = self.p
        self.t = t = p.ctx_ptr("task")
        self.x = p.reg()   # the other callee-saved register: scratch across helper calls
        p.exit_if_null(t)
        if self.whole:  # one line per process: the thread group leader's (yielded first)
            self.task("r1", "pid")
            self.task("r2", "tgid")
            self.emit(asm.jmp("jne", "r1", "r2", self.out))
        self.part1()
        self.part2()
        self.part3()
        self.part4()
        self.part5()
        self.emit(asm.label(self.out))
        return p.build()

    def part1(self) -> None:
        """pid (comm) state ppid pgrp session tty_nr tpgid flags, and the rest of the
        lock_task_sighand() block of do_task_stat."""
        p, t = self.p, self.t
        self.task("r1", "pid")
        self.put(0, "r1")
        task_state(p, t, self.x)
        self.put(5, self.x)
        # the defaults do_task_stat starts from
        for i, v in ((6, 0), (7, -1), (8, -1), (9, 0), (10, -1)):
            self.put_imm(i, v)
        for n in ("nthreads", "rsslim", "sigign", "sigcatch"):
            self.emit(asm.st("dw", "r10", self.slot[n], 0))
        self.task("r1", "exit_code")
        self.save("exit_code", "r1")
        self.task("r1", "flags")
        self.put(11, "r1")

        nosig = p.label_name("nosighand")
        p.ptr(Field(t, "sighand", struct="task_struct"), dst="r1")
        self.emit(asm.jmp("jeq", "r1", 0, nosig))
        # collect_sigign_sigcatch, signals 1..31 (the first word & 0x7fffffff)
        self.emit(asm.mov("r4", 0), asm.mov("r5", 0))
        for i in range(31):
            other, nxt = p.label_name("sigdfl"), p.label_name("signext")
            self.load("r2", "r1", "sighand_struct", f"action[{i}].sa.sa_handler")
            self.emit(asm.jmp("jne", "r2", SIG_IGN, other), asm.alu("or", "r4", 1 << i),
                      asm.ja(nxt), asm.label(other),
                      asm.jmp("jlt", "r2", SIG_IGN + 1, nxt), asm.alu("or", "r5", 1 << i),
                      asm.label(nxt))
        self.save("sigign", "r4")
        self.save("sigcatch", "r5")
        # tty_nr = new_encode_dev(tty_devnum(tty)), tpgid = pid_nr_ns(tty_get_pgrp(tty))
        notty = p.label_name("notty")
        p.ptr(Field(t, "signal->tty", struct="task_struct"), dst="r1")
        self.emit(asm.jmp("jeq", "r1", 0, notty))
        self.load("r2", "r1", "tty_struct", "ctrl.pgrp->numbers[0].nr")
        self.put(10, "r2")
        self.load("r2", "r1", "tty_struct", "driver->major")
        self.load("r3", "r1", "tty_struct", "driver->minor_start")
        self.load("r4", "r1", "tty_struct", "index")
        self.emit(asm.alu("lsh", "r2", MINORBITS, alu32=True),
                  asm.alu("or", "r2", "r3", alu32=True),
                  asm.alu("add", "r2", "r4", alu32=True),                  # dev = MKDEV() + index
                  asm.mov("r3", "r2"), asm.alu("rsh", "r3", MINORBITS),     # major
                  asm.alu("and", "r2", (1 << MINORBITS) - 1),               # minor
                  asm.mov("r4", "r2"), asm.alu("and", "r4", 0xFF),
                  asm.alu("lsh", "r3", 8), asm.alu("or", "r4", "r3"),
                  asm.alu("and", "r2", ~0xFF), asm.alu("lsh", "r2", 12), asm.alu("or", "r4", "r2"))
        self.put(9, "r4")
        self.emit(asm.label(notty))
        self.signal("r1", "nr_threads")
        self.save("nthreads", "r1")
        self.signal("r1", f"rlim[{RLIMIT_RSS}].rlim_cur")
        self.save("rsslim", "r1")
        if self.whole:
            keep = p.label_name("exitcode")
            self.signal("r1", "flags")
            self.emit(asm.jmp("jset", "r1", SIGNAL_GROUP_EXIT | SIGNAL_STOP_STOPPED, f"{keep}_g"),
                      asm.ja(keep), asm.label(f"{keep}_g"))
            self.signal("r1", "group_exit_code")
            self.save("exit_code", "r1")
            self.emit(asm.label(keep))
        # pid_nr_ns(task_pid_ptr(task, type)): signal->pids[type] for all but PIDTYPE_PID
        pidtype = self.b.enum_values("pid_type")
        self.signal("r1", f"pids[{pidtype['PIDTYPE_SID']}]->numbers[0].nr")
        self.put(8, "r1")
        self.task("r1", f"real_parent->signal->pids[{pidtype['PIDTYPE_TGID']}]->numbers[0].nr")
        self.put(6, "r1")
        self.signal("r1", f"pids[{pidtype['PIDTYPE_PGID']}]->numbers[0].nr")
        self.put(7, "r1")
        self.emit(asm.label(nosig))
        # wchan = !task_is_running(), for the pid file only below two threads
        done = p.label_name("wchan")
        self.emit(asm.st("dw", "r10", self.slot["wchan"], 0))
        if self.permitted:
            if self.whole:
                self.fetch("r1", "nthreads")
                self.emit(asm.jmp("jsge", "r1", 2, done))
            self.task("r1", "__state")
            self.emit(asm.jmp("jeq", "r1", 0, done), asm.st("dw", "r10", self.slot["wchan"], 1))
        self.emit(asm.label(done))
        # the name last: its paths (worker, kernel thread, comm) leave differently typed
        # pointers on the stack, so everything between it and the printf is verified once
        # per path
        for i, slot in enumerate(task_name(p, t)):
            self.emit(asm.ldx("dw", "r1", "r10", slot.off))
            self.put(1 + i, "r1")
        self.printf(FORMATS[0], 12)

    def thread_sums(self) -> None:
        """thread_group_cputime and do_task_stat's fault/gtime sums: signal's counters of
        the dead threads plus every thread on signal->thread_head."""
        p, b = self.p, self.b
        fields = [("min_flt", "min_flt", "min_flt"), ("maj_flt", "maj_flt", "maj_flt"),
                  ("gtime", "gtime", "gtime"), ("utime", "utime", "utime"),
                  ("stime", "stime", "stime"),
                  ("rtime", "sum_sched_runtime", "se.sum_exec_runtime")]
        for slot, sig_field, _ in fields:
            self.signal("r1", sig_field)
            self.save(slot, "r1")
        node = b.offsetof("task_struct", "thread_node")
        head = b.offsetof("signal_struct", "thread_head")
        cast = b.find("bpf_rdonly_cast", "func").id
        task_id = b.find("task_struct").id
        loop, done = p.label_name("threads"), p.label_name("threads_done")

        def next_thread() -> None:
            """x = container_of(r1 (a list node), struct task_struct, thread_node), an
            untrusted pointer (bpf_rdonly_cast: plain, fault-safe loads)."""
            self.emit(asm.alu("sub", "r1", node), asm.mov("r2", task_id), asm.call_kfunc(cast),
                      asm.mov(self.x, "r0"))

        p.ptr(Field(self.t, "signal", struct="task_struct"), dst="r1")
        self.emit(asm.ldx("dw", "r1", "r1", b.offsetof("signal_struct", "thread_head.next")))
        next_thread()
        self.emit(asm.label(loop), asm.may_goto(done),
                  # back at &signal->thread_head?  (x - signal: a number)
                  asm.mov("r2", self.x))
        p.ptr(Field(self.t, "signal", struct="task_struct"), dst="r3")
        self.emit(asm.alu("sub", "r2", "r3"), asm.jmp("jeq", "r2", head - node, done))
        for slot, _, field in fields:
            self.emit(asm.ldx("dw", "r1", self.x, b.offsetof("task_struct", field)))
            self.fetch("r2", slot)
            self.emit(asm.alu("add", "r2", "r1"))
            self.save(slot, "r2")
        self.emit(asm.ldx("dw", "r1", self.x, b.offsetof("task_struct", "thread_node.next")))
        next_thread()
        self.emit(asm.ja(loop), asm.label(done))

    def cputime_adjust(self) -> None:
        """data[4], data[5] = clock_t of cputime_adjust()'s utime and stime."""
        self.emit(*cputime_adjust(self.slot, self.p.label_name("cputime")))
        self.clock_t("r5")
        self.clock_t("r4")
        self.put(4, "r5")
        self.put(5, "r4")

    def part2(self) -> None:
        """minflt cminflt majflt cmajflt utime stime cutime cstime priority nice num_threads
        0 starttime."""
        if self.whole:
            self.thread_sums()
            prev = "signal->prev_cputime"
        else:
            for slot, field in (("min_flt", "min_flt"), ("maj_flt", "maj_flt"), ("gtime", "gtime"),
                                ("utime", "utime"), ("stime", "stime"),
                                ("rtime", "se.sum_exec_runtime")):
                self.task("r1", field)
                self.save(slot, "r1")
            prev = "prev_cputime"
        self.task("r1", prev + ".stime")
        self.save("prev_stime", "r1")
        self.task("r1", prev + ".utime")
        self.save("prev_utime", "r1")
        self.fetch("r1", "min_flt")
        self.put(0, "r1")
        self.signal("r1", "cmin_flt")
        self.put(1, "r1")
        self.fetch("r1", "maj_flt")
        self.put(2, "r1")
        self.signal("r1", "cmaj_flt")
        self.put(3, "r1")
        self.cputime_adjust()
        for i, f in ((6, "cutime"), (7, "cstime")):
            self.signal("r1", f)
            self.clock_t("r1")
            self.put(i, "r1")
        self.task("r1", "prio")
        self.emit(asm.alu("sub", "r1", MAX_RT_PRIO))
        self.put(8, "r1")
        self.task("r1", "static_prio")
        self.emit(asm.alu("sub", "r1", DEFAULT_PRIO))
        self.put(9, "r1")
        self.fetch("r1", "nthreads")
        self.put(10, "r1")
        # nsec_to_clock_t(timens_add_boottime_ns(start_boottime))
        self.emit(asm.call(asm.Helper.get_current_task_btf), asm.mov(self.x, "r0"))
        self.load("r2", self.x, "task_struct", "nsproxy->time_ns->offsets.boottime.tv_sec")
        self.emit(asm.alu("mul", "r2", 1_000_000_000))
        self.load("r3", self.x, "task_struct", "nsproxy->time_ns->offsets.boottime.tv_nsec")
        self.emit(asm.alu("add", "r2", "r3"))
        self.task("r1", "start_boottime")
        self.emit(asm.alu("add", "r1", "r2"))
        self.clock_t("r1")
        self.put(11, "r1")
        self.printf(FORMATS[1], 12)

    def part3(self) -> None:
        """vsize rss rsslim startcode endcode startstack kstkesp kstkeip signal blocked
        sigignore sigcatch."""
        p = self.p
        skip = p.label_name("nomm")
        for i in (0, 1, 3, 4, 5, 6, 7):
            self.put_imm(i, 0)
        mm = self.mm(skip)
        self.load("r2", mm, "mm_struct", "total_vm")
        self.emit(asm.alu("lsh", "r2", PAGE_SHIFT))
        self.put(0, "r2")
        # get_mm_rss: percpu_counter_read_positive of the three resident counters
        self.emit(asm.mov("r3", 0))
        for member in ("MM_FILEPAGES", "MM_ANONPAGES", "MM_SHMEMPAGES"):
            k = self.b.enum_value(None, member)
            neg = p.label_name("rssneg")
            self.load("r2", mm, "mm_struct", f"rss_stat[{k}].count")
            self.emit(asm.jmp("jslt", "r2", 0, neg), asm.alu("add", "r3", "r2"), asm.label(neg))
        self.put(1, "r3")
        if not self.permitted:  # mm ? (permitted ? mm->start_code : 1) : 0, and no more
            self.put_imm(3, 1)
            self.put_imm(4, 1)
        else:
            self.start_code_to_eip(mm, skip)
        self.emit(asm.label(skip))
        self.fetch("r1", "rsslim")
        self.put(2, "r1")
        for i, f in ((8, "pending.signal.sig[0]"), (9, "blocked.sig[0]")):
            self.task("r1", f)
            self.emit(asm.alu("and", "r1", MASK_SIG0))
            self.put(i, "r1")
        self.fetch("r1", "sigign")
        self.put(10, "r1")
        self.fetch("r1", "sigcatch")
        self.put(11, "r1")
        self.printf(FORMATS[2], 12)

    def start_code_to_eip(self, mm: str, skip: str) -> None:
        """data[3..7] = startcode endcode startstack kstkesp kstkeip (permitted)."""
        p = self.p
        regs = p.label_name("kstk")
        for i, f in ((3, "start_code"), (4, "end_code"), (5, "start_stack")):
            self.load("r2", mm, "mm_struct", f)
            self.put(i, "r2")
        # KSTK_ESP / KSTK_EIP only while exiting or dumping core, if the stack is still there
        self.task("r1", "flags")
        self.emit(asm.jmp("jset", "r1", PF_EXITING | PF_DUMPCORE | PF_POSTCOREDUMP, f"{regs}_yes"),
                  asm.ja(skip), asm.label(f"{regs}_yes"))
        self.task("r1", "stack_refcount.refs.counter")
        self.emit(asm.jmp("jeq", "r1", 0, skip))
        self.task("r1", "stack")
        self.emit(asm.jmp("jeq", "r1", 0, skip),
                  asm.mov("r1", self.t), asm.call(asm.Helper.task_pt_regs), asm.mov(self.x, "r0"))
        self.load("r1", self.x, "pt_regs", "sp")
        self.put(6, "r1")
        self.load("r1", self.x, "pt_regs", "ip")
        self.put(7, "r1")

    def part4(self) -> None:
        """wchan 0 0 exit_signal processor rt_priority policy delayacct_blkio_ticks
        guest_time cguest_time start_data end_data start_brk arg_start."""
        self.fetch("r1", "wchan")
        self.put(0, "r1")
        for i, f in ((1, "exit_signal"), (2, "thread_info.cpu"), (3, "rt_priority"), (4, "policy")):
            self.task("r1", f)
            self.put(i, "r1")
        self.task("r1", "delays->blkio_delay")   # 0 when task->delays is NULL (a fault-safe load)
        self.clock_t("r1")
        self.put(5, "r1")
        self.fetch("r1", "gtime")
        self.clock_t("r1")
        self.put(6, "r1")
        self.signal("r1", "cgtime")
        self.clock_t("r1")
        self.put(7, "r1")
        self.mm_fields(8, ["start_data", "end_data", "start_brk", "arg_start"])
        self.printf(FORMATS[3], 12)

    def part5(self) -> None:
        """arg_end env_start env_end exit_code."""
        self.mm_fields(0, ["arg_end", "env_start", "env_end"])
        if self.permitted:
            self.fetch("r1", "exit_code")
            self.put(3, "r1")
        else:
            self.put_imm(3, 0)
        self.printf(FORMATS[4], 4)



def _build(btf, whole: bool, permitted: bool = True) -> ProgramSpec:
    return _Stat(btf, whole, permitted).build()


def build_pid(btf) -> ProgramSpec:
    """<pid>/stat: proc_tgid_stat, printed for the thread group leader."""
    return _build(btf, True)


def build_tid(btf) -> ProgramSpec:
    """<pid>/task/<tid>/stat: proc_tid_stat."""
    return _build(btf, False)


# The line a reader gets when ptrace_may_access(task, PTRACE_MODE_READ_FSCREDS) fails
# (do_task_stat with permitted = 0): startcode = endcode = 1 with an mm, 0 for startstack,
# kstkesp, kstkeip, wchan, start_data ... env_end and exit_code. Not served by itself: for the
# FUSE layer to open instead of the above for such readers (the check a ptrace=True file does).
def build_pid_unpermitted(btf) -> ProgramSpec:
    return _build(btf, True, False)


def build_tid_unpermitted(btf) -> ProgramSpec:
    return _build(btf, False, False)


FILES = [
    IterSpec("stat", "task", build_pid, per="pid", nonempty=True, unprivileged=build_pid_unpermitted,
             doc="/proc/<pid>/stat (do_task_stat, whole process)"),
    IterSpec("stat", "task", build_tid, per="tid", nonempty=True, unprivileged=build_tid_unpermitted,
             doc="/proc/<pid>/task/<tid>/stat (do_task_stat, one thread)"),
]
