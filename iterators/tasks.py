"""tasks — one line per thread, from the task iterator.

   TGID     TID    PPID   UID S COMM
      1       1       0     0 S systemd

TGID, TID, PPID, UID and S are the values of /proc/<tgid>/task/<tid>/stat (fields 1, 3, 4)
and status (Tgid, Pid, PPid, first Uid); COMM is the comm (as in /proc/<pid>/comm).
"""

from iterfs import asm
from iterfs.catalog import IterSpec
from iterfs.dsl.program import Addr, Field, IterProgram

HEADER = "   TGID     TID    PPID   UID S COMM\n"

# include/linux/sched.h: the state bits /proc reports and __task_state_index()
TASK_REPORT = 0x7F
TASK_IDLE = 0x402
TASK_REPORT_IDLE = 0x80
TASK_RTLOCK_WAIT, TASK_FROZEN, TASK_UNINTERRUPTIBLE = 0x1000, 0x8000, 0x2
# fs/proc/array.c task_state_array, indexed by fls(state)
STATES = "RSDTtXZPI"


def task_state(p: IterProgram, task: str, dst: str) -> None:
    """dst = the state letter /proc prints (task_state_index → task_state_array)."""
    done = p.label_name("state")
    p.load("r2", Field(task, "__state"))
    p.load("r3", Field(task, "exit_state"))
    p.emit(
        asm.mov(dst, asm.Reg.R2), asm.alu("or", dst, asm.Reg.R3), asm.alu("and", dst, TASK_REPORT),
        asm.mov("r3", asm.Reg.R2), asm.alu("and", "r3", TASK_IDLE),
        asm.jmp("jne", "r3", TASK_IDLE, f"{done}_rt"), asm.mov(dst, TASK_REPORT_IDLE),
        asm.label(f"{done}_rt"),
        asm.jmp("jset", "r2", TASK_RTLOCK_WAIT | TASK_FROZEN, f"{done}_d"),
        asm.ja(f"{done}_fls"),
        asm.label(f"{done}_d"), asm.mov(dst, TASK_UNINTERRUPTIBLE),
        asm.label(f"{done}_fls"),
    )
    # fls(state) as a ladder: the highest set bit picks the letter
    for bit in range(len(STATES) - 1, 0, -1):
        p.emit(asm.jmp("jge", dst, 1 << (bit - 1), f"{done}_{bit}"))
    p.emit(asm.mov(dst, ord(STATES[0])), asm.ja(done))
    for bit in range(len(STATES) - 1, 0, -1):
        p.emit(asm.label(f"{done}_{bit}"), asm.mov(dst, ord(STATES[bit])), asm.ja(done))
    p.emit(asm.label(done))


def build(btf) -> "ProgramSpec":
    p = IterProgram("task", btf=btf, name="tasks")
    p.header(HEADER)
    t = p.ctx_ptr("task")
    p.exit_if_null(t)
    s = p.reg()
    task_state(p, t, s)
    p.seq_printf("%7d %7d %7d %5u %c %s\n", Field(t, "tgid"), Field(t, "pid"),
                 Field(t, "real_parent->tgid"), Field(t, "real_cred->uid.val"), s,
                 Addr(t, "comm"))
    return p.build()


FILES = [IterSpec("tasks", "task", build, doc="/proc/<pid>/task/<tid>/stat and status")]
