"""Iterator reads that fail on the real kernel: EIO for that reader only, logged, and the
daemon serves everyone else on."""

from __future__ import annotations

import errno
import os
import threading

import pytest

from daemonhelp import Daemon, parse_tasks, pin_root_for

pytestmark = [pytest.mark.kernel, pytest.mark.fuse]

# One task's record larger than the seq_file buffer (PAGE_SIZE << 3 = 32 KiB): the kernel's
# bpf_seq_read() answers E2BIG (kernel/bpf/bpf_iter.c), at the first task already.
E2BIG_MODULE = '''
from iterfs.catalog import IterSpec
from iterfs.dsl.program import IterProgram

def build(btf):
    p = IterProgram("task", btf=btf)
    t = p.ctx_ptr("task")
    p.exit_if_null(t)
    for _ in range(40):
        p.seq_printf("{line}")
    return p.build()

FILES = [IterSpec("faults/e2big", "task", build)]
'''.replace("{line}", "x" * 1023 + "\\\\n")


@pytest.fixture
def faulty(tmp_path):
    cat = tmp_path / "catalog"
    cat.mkdir()
    (cat / "faults.py").write_text(E2BIG_MODULE)
    d = Daemon(str(tmp_path / "mnt"), pin_root_for(tmp_path), "--catalog", str(cat)).start()
    try:
        yield d
    finally:
        d.stop()


def test_e2big_is_eio_for_that_reader_only_and_logged(faulty):
    mp = faulty.mountpoint
    bad, good = os.path.join(mp, "faults", "e2big"), os.path.join(mp, "tasks")
    errors, outputs = [], []

    def read_bad():
        try:
            with open(bad, "rb") as f:
                f.read()
        except OSError as e:
            errors.append(e.errno)

    def read_good():
        outputs.append(open(good, "rb").read())

    threads = [threading.Thread(target=fn) for fn in (read_bad, read_good) * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [errno.EIO] * 4
    assert len(outputs) == 4
    for out in outputs:
        parse_tasks(out)
    log = faulty.output()
    assert "faults/e2big" in log and "Argument list too long" in log
    assert "Traceback" not in log
    assert faulty.proc.poll() is None
    # and it fails again, cleanly, at every open: nothing is cached or stuck
    with pytest.raises(OSError) as e:
        open(bad, "rb").read()
    assert e.value.errno == errno.EIO
