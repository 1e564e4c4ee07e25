"""kallsyms — /proc/kallsyms from the ksym iterator, byte for byte.

The ksym iterator walks the same kallsym_iter as /proc/kallsyms (kernel/kallsyms.c: s_start,
s_next, update_iter): core kernel symbols, then module symbols, ftrace trampolines
("__builtin__ftrace"), BPF programs ("bpf") and kprobe insn pages ("__builtin__kprobes"), and
the program prints each one as s_show does:

    "%px %c %s\\t[%s]\\n"   value, type, name, module_name   (module_name[0] != 0)
    "%px %c %s\\n"          value, type, name                (core kernel symbols)

- A symbol with an empty name is skipped ("Some debugging symbols have no name").
- The type letter of a symbol with a module name is toupper(type) when `exported`, else
  tolower(type); a core symbol's letter is printed as kallsyms_get_symbol_type() made it.
  (BPF and kprobe symbols have `exported` = 0, hence lower case "t".) The case change is
  ASCII-only; the kernel's toupper/tolower also map Latin-1 letters, which no symbol type is.
- Addresses: s_show prints `iter->show_value ? value : NULL`, show_value being
  kallsyms_show_value(file->f_cred) of the *reader* at open time. The ksym iterator computes
  show_value from the credentials of whoever creates the iterator fd (the daemon), which is
  the wrong person for a file served to others. So there are two programs, and the
  permission layer picks one per reader (IterSpec.unprivileged; `shows_values()` below is
  kallsyms_show_value for a reader):
    build         the real addresses, as /proc shows them to root;
    build_zeroed  every address 0000000000000000, as /proc shows them to a reader without
                  the right to see them.
- Mode: /proc/kallsyms is 0444; the spec says 0400 (root only) until the permission layer
  serves `unprivileged` to other readers — then 0444 is the faithful mode.
- The walk's end (a quirk of this kernel, see tests/test_targets.py test_ksym): the ksym
  iterator's stop call never passes NULL: ksym_prog_seq_show hands the program the
  iterator's own, stale state again — the last symbol, with module_name overwritten to
  "__builtin__kprobes" by the failed kprobe lookup. Only meta->seq_num tells: it repeats the
  last object's. A symbol that did not fit in the seq buffer is also shown again with the
  same seq_num (bpf_seq_read retries it in the next read()), so the program remembers in
  its session state the seq_num of the last line it printed *successfully*
  (bpf_seq_printf returned 0) and drops a call that repeats exactly that one.
- Long names: bpf_seq_printf copies "%s" arguments into a 512-byte buffer
  (MAX_BPRINTF_BIN_ARGS), so a name near KSYM_NAME_LEN (512) would be cut. Names of
  LONG_NAME bytes or more (bpf_strnlen) are therefore copied to the stack in pieces and
  written with bpf_seq_write (bpf_seq_write takes no untrusted BTF pointer).
"""

from __future__ import annotations

from iterfs import asm
from iterfs.catalog import IterSpec, kallsyms_show_value
from iterfs.dsl.program import Addr, Const, Field, IterProgram, ProgramSpec, Stack

KSYM_NAME_LEN = 512
LONG_NAME = 400   # names at least this long bypass bpf_seq_printf's 512-byte argument buffer
CHUNK = 256       # ... and are copied to the stack in pieces of at most this size

# session state word: seq_num + 1 of the last line printed in full (0: none yet)
S_PRINTED = 0


def _case_fold(p: IterProgram, c: str, upper: bool) -> None:
    """c = toupper(c) or tolower(c), ASCII letters only."""
    lo, hi, delta = (ord("a"), ord("z"), -32) if upper else (ord("A"), ord("Z"), 32)
    done = p.label_name("case")
    p.emit(asm.jmp("jlt", c, lo, done), asm.jmp("jgt", c, hi, done),
           asm.alu("add", c, delta), asm.label(done))


def _build(btf, *, zeroed: bool, long_name_min: int = LONG_NAME, chunk: int = CHUNK) -> ProgramSpec:
    """long_name_min and chunk exist for tests: a small threshold sends every symbol down the
    long-name path, which real kernels rarely take."""
    p = IterProgram("ksym", btf=btf, name="kallsyms0" if zeroed else "kallsyms")
    s = p.session()              # before the NULL check, as session() asks
    k = p.ctx_ptr("ksym")
    p.exit_if_null(k)
    off = lambda f: btf.offsetof("kallsym_iter", f)  # noqa: E731
    out = p.label_name("out")
    typ = p.stack(8)
    length, size = p.stack(8), p.stack(8)
    buf = p.stack(chunk)

    # s_show: nameless symbols print nothing
    p.emit(asm.ldx("b", "r1", k, off("name")), asm.jmp("jeq", "r1", 0, out))
    # the stale final call repeats the seq_num of the last line printed in full
    p.load("r2", Field(p.meta, "seq_num", struct="bpf_iter_meta"))
    p.emit(asm.alu("add", "r2", 1), asm.ldx("dw", "r3", s, S_PRINTED),
           asm.jmp("jeq", "r2", asm.Reg.R3, out))

    # type letter: upper case if exported, lower case if not (module-like symbols only)
    core, have_type = p.label_name("core"), p.label_name("type")
    p.emit(asm.ldx("b", "r1", k, off("type")), asm.ldx("b", "r2", k, off("module_name")),
           asm.jmp("jeq", "r2", 0, have_type),
           asm.ldx("w", "r2", k, off("exported")), asm.jmp("jeq", "r2", 0, f"{have_type}_lower"))
    _case_fold(p, "r1", upper=True)
    p.emit(asm.ja(have_type), asm.label(f"{have_type}_lower"))
    _case_fold(p, "r1", upper=False)
    p.emit(asm.label(have_type), asm.stx("dw", "r10", "r1", typ))

    value = Const(0) if zeroed else Field(k, "value")
    name, module = Addr(k, "name"), Addr(k, "module_name")

    # name length, only to route very long names around bpf_seq_printf's argument buffer.
    # A NUL at name[long_name_min - 1] proves the name shorter (bytes after the NUL are
    # stale, so a non-NUL byte proves nothing): bpf_strnlen (~1 µs: it reads byte by byte
    # with nofault copies) runs only in that rare case.
    long_name, short = p.label_name("long"), p.label_name("short")
    p.emit(asm.ldx("b", "r1", k, off("name") + long_name_min - 1), asm.jmp("jeq", "r1", 0, short))
    p.addr("r1", name)
    p.emit(asm.mov("r2", KSYM_NAME_LEN),
           asm.call_kfunc(btf.find("bpf_strnlen", "func").id),
           asm.stx("dw", "r10", "r0", length),
           asm.jmp("jsge", "r0", long_name_min, long_name), asm.label(short))

    p.emit(asm.ldx("b", "r2", k, off("module_name")), asm.jmp("jeq", "r2", 0, core))
    p.seq_printf("%px %c %s\t[%s]\n", value, Stack(typ), name, module)
    p.emit(asm.ja(f"{out}_check"), asm.label(core))
    p.seq_printf("%px %c %s\n", value, Stack(typ), name)
    p.emit(asm.ja(f"{out}_check"))

    # a long name: "%px %c ", then the name in pieces copied to the stack (bpf_seq_write
    # takes no untrusted BTF pointer), then the rest of the line
    p.emit(asm.label(long_name))
    p.seq_printf("%px %c ", value, Stack(typ))
    p.emit(asm.jmp("jne", "r0", 0, out))
    for i in range(0, KSYM_NAME_LEN, chunk):
        # r2 = min(length - i, chunk); none left: the name is done
        p.emit(asm.ldx("dw", "r2", "r10", length), asm.alu("sub", "r2", i),
               asm.jmp("jslt", "r2", 1, f"{long_name}_end"),
               asm.jmp("jle", "r2", chunk, f"{long_name}_{i}"), asm.mov("r2", chunk),
               asm.label(f"{long_name}_{i}"), asm.stx("dw", "r10", "r2", size))
        p.addr("r3", name)
        p.emit(asm.alu("add", "r3", i), asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", buf),
               asm.call(asm.Helper.probe_read_kernel), asm.jmp("jne", "r0", 0, out),
               asm.ldx("dw", "r3", "r10", size))
        p.seq_write_stack(buf, "r3", chunk)
    p.emit(asm.label(f"{long_name}_end"),
           asm.ldx("b", "r2", k, off("module_name")), asm.jmp("jeq", "r2", 0, f"{long_name}_core"))
    p.seq_printf("\t[%s]\n", module)
    p.emit(asm.ja(f"{out}_check"), asm.label(f"{long_name}_core"))
    p.seq_write("\n")

    # remember the line only if it is complete (0: not -EOVERFLOW)
    p.emit(asm.label(f"{out}_check"), asm.jmp("jne", "r0", 0, out))
    p.load("r2", Field(p.meta, "seq_num", struct="bpf_iter_meta"))
    p.emit(asm.alu("add", "r2", 1), asm.stx("dw", s, "r2", S_PRINTED), asm.label(out))
    return p.build()


def build(btf) -> ProgramSpec:
    """/proc/kallsyms as root reads it: the real addresses."""
    return _build(btf, zeroed=False)


def build_zeroed(btf) -> ProgramSpec:
    """/proc/kallsyms as a reader without kallsyms_show_value() reads it: all addresses 0."""
    return _build(btf, zeroed=True)


# ------------------------------------------------------------------ who sees addresses

shows_values = kallsyms_show_value  # IterSpec(addresses="kallsyms") serves build to these


FILES = [
    IterSpec("kallsyms", "ksym", build, mode=0o400, unprivileged=build_zeroed,
             addresses="kallsyms",
             doc="/proc/kallsyms (kernel/kallsyms.c s_show); readers for whom "
                 "kallsyms_show_value() is false get every address as 0000000000000000"),
]
