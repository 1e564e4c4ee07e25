"""comm and cmdline — /proc/<pid>/comm and /proc/<pid>/cmdline, per process.

Both are `per="pid"` task iterators: the daemon serves them as <pid>/comm and <pid>/cmdline
and links them with pid=<pid> at each open. The task iterator then yields the thread group
leader first (kernel/bpf/task_iter.c task_group_seq_get_next: get_pid_task(PIDTYPE_TGID)),
then every other thread, then calls the program once more with task == NULL.

comm
    Byte-exact fs/proc/base.c comm_show: proc_task_name(m, p, false) + "\\n" for the task
    <pid> itself, printed once, when the iterator hands us the thread whose pid == tgid
    (the leader; after an exec from a secondary thread de_thread() made the execing thread
    the leader, as /proc does). The name comes from iterators/_proc.py task_name (task->comm,
    a kernel thread's full_name, a workqueue worker's "kworker/..." + "+desc"/"-desc") and
    is cut to 63 bytes like proc_task_name's `char tcomm[64]`: bpf_snprintf into a 64-byte
    buffer, then one bpf_seq_write of name + "\\n".
    Approximations are task_name's: a workqueue worker whose pool is gone ("kworker/dying"
    in format_worker_id) shows its comm instead.

cmdline (SLEEPABLE program: bpf_copy_from_user_task reads the target's memory)
    Byte-exact fs/proc/base.c get_mm_cmdline (6.18), read from offset 0 to EOF:
    - nothing for kernel threads (get_task_mm returns NULL for PF_KTHREAD), zombies and
      exited leaders (task->mm == NULL), a process not yet far enough in exec
      (mm->env_end == 0), and arg_start >= arg_end;
    - if env_start != arg_end or env_end < env_start, env_end = arg_end (the args area may
      only overflow into an adjacent environment);
    - the "setproctitle" rule: if the byte at arg_end - 1 reads as non-NUL, the output is
      get_mm_proctitle's: the bytes from arg_start up to and including the first NUL,
      searched in at most one page (PAGE_SIZE = 4096) and cut at env_end - arg_start;
    - otherwise exactly the bytes [arg_start, arg_end), NULs included.
    The bytes are copied from the target in chunks of CHUNK bytes into the stack and
    written with bpf_seq_write (the output is binary: NULs are data).

    SIZE LIMIT (the kernel has none). A BPF iterator stores each program call's output in
    its seq_file buffer of PAGE_SIZE << 3 = 32 KiB (kernel/bpf/bpf_iter.c bpf_seq_read),
    and one call may put at most 32767 bytes there (seq_write keeps count < size). The
    output is therefore streamed over the calls one session gets: the leader, every other
    thread, and the final task == NULL call (which re-acquires the leader with the
    bpf_task_from_pid kfunc). Each call reads seq->count / seq->size to know how much fits.
    A call that would not fit in what is left of the buffer, when the buffer already holds
    earlier output, deliberately overflows the buffer instead: bpf_seq_read then drops that
    call's partial output and calls the program again for the same object at the start of
    the next read(), with an empty buffer. Progress lives in the session state
    (IterProgram.session), which survives those retries. So a process with T threads gets
    up to (T + 1) * 32767 bytes: 65534 for a single-threaded process, ~160 KiB for 4
    threads. Longer command lines are truncated there (a prefix of /proc's bytes); MAX_CALL
    below is the per-call figure.

    Needs bpf_copy_from_user_task (5.18), the bpf_task_from_pid / bpf_task_release
    kfuncs (6.2) and may_goto (6.9). Per call it costs one bpf_copy_from_user_task and
    one bpf_seq_write per CHUNK bytes.

    Other approximations: mm->arg_lock is not taken (a concurrent prctl(PR_SET_MM_*) may be
    seen half-done); access_process_vm is used without FOLL_ANON (differs only for an
    args area that prctl(PR_SET_MM_ARG_START) moved into a file mapping); a copy that
    faults ends the output there (the kernel returns what it read up to the fault).
"""

from iterfs import asm
from iterfs.catalog import IterSpec
from iterfs.dsl.program import Field, IterProgram, ProgramSpec

from ._proc import PF_KTHREAD, task_name

CHUNK = 384                   # bytes per bpf_copy_from_user_task / bpf_seq_write
PAGE_SIZE = 4096              # get_mm_proctitle reads one page
SEQ_BUF = 4096 << 3           # bpf_seq_read's buffer (PAGE_SIZE << 3)
MAX_CALL = SEQ_BUF - 1        # what one program call can add to it
TASK_COMM_BUF = 64            # proc_task_name's tcomm[64]

# session state: u64 words of IterProgram.session(). The loop variables live here too, not
# on the stack: the verifier does not track map memory, so the states of successive loop
# iterations compare equal and the may_goto loops verify at once.
S_PHASE, S_SRC, S_END, S_PID, S_NULSTOP, S_BUDGET, S_N, S_I = (8 * i for i in range(8))
PHASE_NEW, PHASE_STREAM, PHASE_DONE = 0, 1, 2


# ------------------------------------------------------------------------------- comm

def build_comm(btf) -> ProgramSpec:
    p = IterProgram("task", btf=btf, name="proc_comm")
    t = p.ctx_ptr("task")
    p.exit_if_null(t)
    p.load("r1", Field(t, "pid"))
    p.load("r2", Field(t, "tgid"))
    done = p.label_name("comm_done")
    p.emit(asm.jmp("jne", "r1", asm.Reg.R2, done))
    name = task_name(p, t)
    buf = p.stack(TASK_COMM_BUF + 8)
    p.snprintf(buf, TASK_COMM_BUF, "%s%s%s%s", *name)
    # r0 = untruncated length + 1; the buffer holds at most 63 characters + NUL
    short = p.label_name("comm_short")
    p.emit(asm.alu("sub", "r0", 1), asm.jmp("jle", "r0", TASK_COMM_BUF - 1, short),
           asm.mov("r0", TASK_COMM_BUF - 1), asm.label(short),
           asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", buf), asm.alu("add", "r1", asm.Reg.R0),
           asm.st("b", "r1", 0, ord("\n")),
           asm.mov("r7", asm.Reg.R0), asm.alu("add", "r7", 1))
    p.seq_write_stack(buf, "r7", TASK_COMM_BUF)
    p.emit(asm.label(done))
    return p.build()


# ---------------------------------------------------------------------------- cmdline

def _seq_field(p: IterProgram, dst: str, field: str) -> None:
    p.load(dst, Field(p.meta, f"seq->{field}", struct="bpf_iter_meta"))


def _seq_write_buf(p: IterProgram, buf: int, len_reg: str) -> None:
    """bpf_seq_write(seq, r10 + buf, len_reg), len_reg in [0, CHUNK]; r0 = the result."""
    p.emit(asm.ldx("dw", "r1", p.meta, p.btf.offsetof("bpf_iter_meta", "seq")),
           asm.mov("r2", asm.Reg.R10), asm.alu("add", "r2", buf),
           asm.mov("r3", asm.reg(len_reg)), asm.call(asm.Helper.seq_write))


def _stream(p: IterProgram, s: str, tsk: str, buf: int, out: str) -> None:
    """Copy the next part of [s->src, s->end) of tsk's memory into the seq buffer: what
    fits in this call, or nothing and a deliberate overflow (retry with an empty buffer).
    Jumps to `out` when done. Clobbers r0-r5."""
    L = p.label_name
    overflow, go, loop, fin, fail, scan, found, write = (
        L(n) for n in ("overflow", "go", "loop", "fin", "fail", "scan", "found", "write"))

    # room = seq->size - 1 - seq->count; rest = end - src
    _seq_field(p, "r1", "size")
    _seq_field(p, "r2", "count")
    p.emit(asm.alu("sub", "r1", 1), asm.alu("sub", "r1", asm.Reg.R2),
           asm.jmp("jsge", "r1", 0, f"{go}_room"), asm.mov("r1", 0), asm.label(f"{go}_room"),
           asm.ldx("dw", "r3", s, S_END), asm.ldx("dw", "r4", s, S_SRC),
           asm.alu("sub", "r3", asm.Reg.R4),
           asm.jmp("jle", "r3", asm.Reg.R1, f"{go}_rest"),   # all of it fits
           asm.jmp("jne", "r2", 0, overflow),                # earlier output: retry
           asm.mov("r3", asm.Reg.R1),                        # empty buffer: fill it
           asm.label(f"{go}_rest"), asm.stx("dw", s, "r3", S_BUDGET), asm.ja(loop))

    # deliberate overflow: bpf_seq_read drops this call's output and calls again
    p.emit(asm.label(overflow), asm.may_goto(out), asm.mov("r5", CHUNK))
    _seq_write_buf(p, buf, "r5")
    p.emit(asm.jmp("jeq", "r0", 0, overflow), asm.ja(out))

    p.emit(asm.label(loop), asm.may_goto(fin),
           asm.ldx("dw", "r2", s, S_BUDGET), asm.jmp("jeq", "r2", 0, fin),
           asm.jmp("jle", "r2", CHUNK, f"{loop}_n"), asm.mov("r2", CHUNK), asm.label(f"{loop}_n"),
           asm.stx("dw", s, "r2", S_N),
           asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", buf),
           asm.ldx("dw", "r3", s, S_SRC), asm.mov("r4", asm.reg(tsk)), asm.mov("r5", 0),
           asm.call(asm.Helper.copy_from_user_task),
           asm.jmp("jne", "r0", 0, fail),
           asm.ldx("dw", "r1", s, S_NULSTOP), asm.jmp("jeq", "r1", 0, write),
           # setproctitle: stop after the first NUL
           asm.st("dw", s, S_I, 0),
           asm.label(scan), asm.may_goto(write),
           asm.ldx("dw", "r1", s, S_I), asm.ldx("dw", "r2", s, S_N),
           asm.jmp("jge", "r1", asm.Reg.R2, write), asm.jmp("jge", "r1", CHUNK, write),
           asm.mov("r3", asm.Reg.R10), asm.alu("add", "r3", buf), asm.alu("add", "r3", asm.Reg.R1),
           asm.ldx("b", "r3", "r3", 0), asm.jmp("jeq", "r3", 0, found),
           asm.alu("add", "r1", 1), asm.stx("dw", s, "r1", S_I), asm.ja(scan),
           asm.label(found),       # n = i + 1 is the last chunk: end = src + n, budget = n
           asm.alu("add", "r1", 1), asm.stx("dw", s, "r1", S_N), asm.stx("dw", s, "r1", S_BUDGET),
           asm.ldx("dw", "r2", s, S_SRC), asm.alu("add", "r2", asm.Reg.R1),
           asm.stx("dw", s, "r2", S_END),
           asm.label(write),
           asm.ldx("dw", "r5", s, S_N),
           asm.jmp("jle", "r5", CHUNK, f"{write}_ok"), asm.mov("r5", CHUNK),
           asm.label(f"{write}_ok"))
    _seq_write_buf(p, buf, "r5")
    p.emit(asm.ldx("dw", "r1", s, S_N),
           asm.ldx("dw", "r2", s, S_SRC), asm.alu("add", "r2", asm.Reg.R1),
           asm.stx("dw", s, "r2", S_SRC),
           asm.ldx("dw", "r2", s, S_BUDGET), asm.alu("sub", "r2", asm.Reg.R1),
           asm.stx("dw", s, "r2", S_BUDGET), asm.ja(loop),
           asm.label(fail), asm.st("dw", s, S_PHASE, PHASE_DONE), asm.ja(out),
           asm.label(fin),
           asm.ldx("dw", "r1", s, S_SRC), asm.ldx("dw", "r2", s, S_END),
           asm.jmp("jlt", "r1", asm.Reg.R2, out),
           asm.st("dw", s, S_PHASE, PHASE_DONE), asm.ja(out))


def build_cmdline(btf) -> ProgramSpec:
    p = IterProgram("task", btf=btf, name="proc_cmdline", sleepable=True)
    s = p.session()                      # map value: survives retried calls
    tsk = p.reg()
    tmp = p.stack(8)
    buf = p.stack(CHUNK)
    L = p.label_name
    null_call, have, init_done, exit_, release = (
        L(n) for n in ("null", "have", "init_done", "exit", "release"))

    p.ctx_ptr("task", dst=tsk)
    p.emit(asm.jmp("jeq", tsk, 0, null_call),
           asm.ldx("dw", "r1", s, S_PHASE), asm.jmp("jne", "r1", PHASE_NEW, have),
           asm.st("dw", s, S_PHASE, PHASE_DONE))
    # --- first call (the leader): get_mm_cmdline's decisions
    p.load("r1", Field(tsk, "flags"))
    p.emit(asm.jmp("jset", "r1", PF_KTHREAD, exit_))
    p.load("r1", Field(tsk, "mm"))
    p.emit(asm.jmp("jeq", "r1", 0, exit_))
    p.load("r1", Field(tsk, "mm->env_end"))
    p.emit(asm.jmp("jeq", "r1", 0, exit_))
    p.load("r2", Field(tsk, "mm->arg_start"))
    p.load("r3", Field(tsk, "mm->arg_end"))
    p.emit(asm.jmp("jge", "r2", asm.Reg.R3, exit_),
           asm.stx("dw", s, "r2", S_SRC), asm.stx("dw", s, "r3", S_END),
           asm.st("dw", s, S_NULSTOP, 0))
    p.load("r4", Field(tsk, "mm->env_start"))
    # env_end = arg_end unless the environment starts right at arg_end (and is sane)
    p.emit(asm.jmp("jne", "r4", asm.Reg.R3, f"{init_done}_noenv"),
           asm.jmp("jlt", "r1", asm.Reg.R4, f"{init_done}_noenv"),
           asm.ja(f"{init_done}_env"),
           asm.label(f"{init_done}_noenv"), asm.mov("r1", asm.Reg.R3),
           asm.label(f"{init_done}_env"),
           asm.stx("dw", "r10", "r1", tmp))  # tmp = env_end
    p.load("r1", Field(tsk, "pid"))
    p.emit(asm.stx("dw", s, "r1", S_PID))
    # the last byte of the args area: non-NUL means setproctitle
    p.emit(asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", buf), asm.mov("r2", 1),
           asm.ldx("dw", "r3", s, S_END), asm.alu("sub", "r3", 1),
           asm.mov("r4", asm.reg(tsk)), asm.mov("r5", 0),
           asm.call(asm.Helper.copy_from_user_task),
           asm.jmp("jne", "r0", 0, init_done),
           asm.ldx("b", "r1", "r10", buf), asm.jmp("jeq", "r1", 0, init_done),
           # end = min(env_end, arg_start + PAGE_SIZE); stop after the first NUL
           asm.st("dw", s, S_NULSTOP, 1),
           asm.ldx("dw", "r1", "r10", tmp),
           asm.ldx("dw", "r2", s, S_SRC), asm.alu("add", "r2", PAGE_SIZE),
           asm.jmp("jle", "r1", asm.Reg.R2, f"{init_done}_min"), asm.mov("r1", asm.Reg.R2),
           asm.label(f"{init_done}_min"), asm.stx("dw", s, "r1", S_END),
           asm.label(init_done), asm.st("dw", s, S_PHASE, PHASE_STREAM))
    _stream(p, s, tsk, buf, exit_)

    # --- a later thread: continue with it (same mm)
    p.emit(asm.label(have), asm.jmp("jne", "r1", PHASE_STREAM, exit_))
    _stream(p, s, tsk, buf, exit_)

    # --- the final call (task == NULL): continue with the leader, found again by pid
    p.emit(asm.label(null_call),
           asm.ldx("dw", "r1", s, S_PHASE), asm.jmp("jne", "r1", PHASE_STREAM, exit_),
           asm.ldx("w", "r1", s, S_PID),
           asm.call_kfunc(btf.find("bpf_task_from_pid", "func").id),
           asm.jmp("jeq", "r0", 0, exit_), asm.mov(tsk, asm.Reg.R0))
    _stream(p, s, tsk, buf, release)
    p.emit(asm.label(release), asm.mov("r1", asm.reg(tsk)),
           asm.call_kfunc(btf.find("bpf_task_release", "func").id),
           asm.label(exit_))
    return p.build()


FILES = [
    IterSpec("comm", "task", build_comm, per="pid", nonempty=True,
             doc="/proc/<pid>/comm (comm_show: proc_task_name + newline)"),
    IterSpec("cmdline", "task", build_cmdline, per="pid",
             doc="/proc/<pid>/cmdline (get_mm_cmdline), up to (threads + 1) * 32767 bytes"),
]
