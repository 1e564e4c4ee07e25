"""Program pieces shared by the per-task files: /proc's task state letter and task name."""

from iterfs import asm
from iterfs.dsl.program import Addr, Field, IterProgram, Stack

# include/linux/sched.h: the state bits /proc reports, used by __task_state_index()
TASK_REPORT = 0x7F
TASK_IDLE = 0x402
TASK_REPORT_IDLE = 0x80
TASK_RTLOCK_WAIT, TASK_FROZEN, TASK_UNINTERRUPTIBLE = 0x1000, 0x8000, 0x2
# fs/proc/array.c task_state_array, indexed by fls(state)
STATES = "RSDTtXZPI"
# include/linux/sched.h task->flags
PF_WQ_WORKER, PF_KTHREAD = 0x20, 0x00200000


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


def task_name(p: IterProgram, task: str) -> list[Stack]:
    """Four "%s" arguments that print /proc's task name (fs/proc/array.c proc_task_name):
    a workqueue worker's name (wq_worker_comm: comm, or "kworker/R-" + the workqueue's name
    for a rescuer) + "+desc"/"-desc"; a kernel thread's full_name (get_kthread_comm); else
    task->comm. Memory BTF cannot type (task->worker_private) is read with
    bpf_probe_read_kernel."""
    b = p.btf
    slots = p.stack(32)
    tmp = p.stack(8)
    name, name2, sep, desc = (Stack(slots + 8 * i) for i in range(4))
    done, worker, kthread, nodesc = (p.label_name(n) for n in ("name", "worker", "kthread", "nodesc"))

    def store(slot: Stack, reg: str = "r1") -> None:
        p.emit(asm.stx("dw", "r10", reg, slot.off))

    def read_ptr(base: Stack, field_off: int) -> None:
        """r1 = *(u64 *)(*base + field_off), through a probe read into tmp."""
        p.emit(asm.ldx("dw", "r3", "r10", base.off), asm.alu("add", "r3", field_off))
        p.probe_read(tmp, 8, "r3")
        p.emit(asm.ldx("dw", "r1", "r10", tmp))

    def at(base: Stack, field_off: int, slot: Stack) -> None:
        p.emit(asm.ldx("dw", "r1", "r10", base.off), asm.alu("add", "r1", field_off))
        store(slot)

    empty = p.string("")
    p.addr("r1", Addr(task, "comm"))
    store(name)
    p.emit(p.rodata_ptr("r1", empty))
    for slot in (name2, sep, desc):
        store(slot)
    p.load("r2", Field(task, "flags"))
    p.emit(asm.jmp("jset", "r2", PF_WQ_WORKER, worker),
           asm.jmp("jset", "r2", PF_KTHREAD, kthread), asm.ja(done))

    p.emit(asm.label(kthread))
    p.load("r1", Field(task, "worker_private"))
    p.emit(asm.stx("dw", "r10", "r1", tmp))
    read_ptr(Stack(tmp), b.offsetof("kthread", "full_name"))
    p.emit(asm.jmp("jeq", "r1", 0, done))
    store(name)
    p.emit(asm.ja(done))

    p.emit(asm.label(worker))
    wk = desc  # the desc slot holds the struct worker * until desc is known
    p.load("r1", Field(task, "worker_private"))
    p.emit(asm.stx("dw", "r10", "r1", tmp))
    read_ptr(Stack(tmp), b.offsetof("kthread", "data"))
    p.emit(asm.jmp("jeq", "r1", 0, done))
    store(wk)
    read_ptr(wk, b.offsetof("worker", "rescue_wq"))
    p.emit(asm.jmp("jeq", "r1", 0, f"{worker}_pool"))
    p.emit(asm.alu("add", "r1", b.offsetof("workqueue_struct", "name")))
    store(name2)
    p.emit(p.rodata_ptr("r1", p.string("kworker/R-")))
    store(name)
    p.emit(asm.label(f"{worker}_pool"))
    read_ptr(wk, b.offsetof("worker", "pool"))
    p.emit(asm.jmp("jeq", "r1", 0, nodesc))
    p.emit(asm.ldx("dw", "r3", "r10", wk.off), asm.alu("add", "r3", b.offsetof("worker", "desc")))
    p.probe_read(tmp, 1, "r3")
    p.emit(asm.ldx("b", "r1", "r10", tmp), asm.jmp("jeq", "r1", 0, nodesc))
    read_ptr(wk, b.offsetof("worker", "current_work"))
    p.emit(p.rodata_ptr("r2", p.string("-")), asm.jmp("jeq", "r1", 0, f"{worker}_sep"),
           p.rodata_ptr("r2", p.string("+")), asm.label(f"{worker}_sep"))
    store(sep, "r2")
    at(wk, b.offsetof("worker", "desc"), desc)
    p.emit(asm.ja(done), asm.label(nodesc), p.rodata_ptr("r1", empty))
    store(desc)
    p.emit(asm.label(done))
    return [name, name2, sep, desc]
