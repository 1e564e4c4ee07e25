"""tasks — one line per thread, from the task iterator.

   TGID     TID    PPID   UID S COMM
      1       1       0     0 S systemd

TGID, TID, PPID, UID and S are the values of /proc/<tgid>/task/<tid>/stat (fields 1, 3, 4)
and status (Tgid, Pid, PPid, first Uid); COMM is the name /proc/<pid>/stat prints in
parentheses (proc_task_name: comm, a kernel thread's full name, a workqueue worker's
"kworker/0:1-events" with "+" while it runs a work item).
"""

from iterfs.catalog import IterSpec
from iterfs.dsl.program import Field, IterProgram, ProgramSpec

from ._proc import task_name, task_state

HEADER = "   TGID     TID    PPID   UID S COMM\n"


def build(btf) -> ProgramSpec:
    p = IterProgram("task", btf=btf, name="tasks")
    p.header(HEADER)
    t = p.ctx_ptr("task")
    p.exit_if_null(t)
    s = p.reg()
    task_state(p, t, s)
    name = task_name(p, t)
    p.seq_printf("%7d %7d %7d %5u %c %s%s%s%s\n", Field(t, "tgid"), Field(t, "pid"),
                 Field(t, "real_parent->tgid"), Field(t, "real_cred->uid.val"), s, *name)
    return p.build()


FILES = [IterSpec("tasks", "task", build, doc="/proc/<pid>/task/<tid>/stat and status")]
