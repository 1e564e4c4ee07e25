"""bpf — bpftool's `map list`, `prog list` and `link list`, one line per object, from the
bpf_map, bpf_prog and bpf_link iterators.

Each line is byte for byte the FIRST line bpftool v7.1 prints for the object (bpftool has no
header line, so these files have none either). The files are mode 0400: the kernel lets only
CAP_SYS_ADMIN enumerate BPF objects (BPF_*_GET_NEXT_ID), which is why bpftool runs as root.

bpf/maps   `ID: TYPE  [name NAME  ]flags 0xFLAGS  key KB  value VB  max_entries N`

    bpftool's first line (tools/bpf/bpftool/map.c show_map_header_plain) followed by "  "
    and the first three fields of its second line (show_map_close_plain: "\\tkey %uB  value
    %uB  max_entries %u") on the same line:

        838: hash  name t_hash  flags 0x0  key 8B  value 16B  max_entries 128
        844: hash  flags 0x0  key 2B  value 2B  max_entries 2
        845: array  name t_frozen  flags 0x80  key 4B  value 9B  max_entries 1

bpf/progs  `ID: TYPE  [name NAME  ]tag HEX16[  gpl][ run_time_ns N run_cnt N][ recursion_misses N]`

    prog.c print_prog_header_plain. NAME is bpftool's get_prog_full_name(): a name of 15
    characters (BPF_OBJ_NAME_LEN - 1, so possibly cut) of a program with BTF func_info is
    replaced by the name of the BTF FUNC of func_info[0]. run_time_ns / run_cnt and
    recursion_misses are the per-CPU sums the kernel reports in bpf_prog_info
    (bpf_prog_get_stats); they are printed only when non-zero, as bpftool does (run times are
    only counted while kernel.bpf_stats_enabled or a BPF_ENABLE_STATS fd is on):

        876: socket_filter  tag 59f4a931744dcdc6  gpl
        878: socket_filter  name t_proprietary  tag 59f4a931744dcdc6
        879: socket_filter  name iterfs_test_program_with_a_long_name  tag 59f4a931744dcdc6  gpl
        897: tracing  name tasks  tag f1a8b692c17272f5  gpl run_time_ns 271523 run_cnt 222

bpf/links  `ID: TYPE  prog PROGID  ` + for iterator links `target_name NAME  ` and
           `map_id N  ` (bpf_map_elem, bpf_sk_storage_map) / `tid N ` or `pid N ` (task,
           task_file, task_vma) / `cgroup_id N  order ORDER  ` (cgroup)

    link.c show_link_header_plain + show_iter_plain, trailing spaces included. For every
    other link type (tracing, raw_tracepoint, cgroup, netns, xdp, ...) bpftool v7.1 starts a
    new line right after the header, so the first line is the header alone:

        4752: iter  prog 886  target_name task  tid 25205 
        4754: iter  prog 891  target_name cgroup  cgroup_id 1  order self_only  
        4755: raw_tracepoint  prog 892  

TYPE is libbpf's name for the type: the lower-case suffix of the `enum bpf_map_type`,
`bpf_prog_type` or `bpf_link_type` enumerator. The name tables are built at build time from
the running kernel's BTF enums (so a newer kernel's types get names without a code change),
with two exceptions libbpf has: enumerators that alias another value (the *_DEPRECATED
spellings of BPF_MAP_TYPE_CGROUP_STORAGE and _PERCPU_CGROUP_STORAGE) give way to the
non-deprecated name, and the `__MAX_*` sentinels are left out. A value outside the table is
printed as bpftool prints a value libbpf does not know: `type N`. An installed bpftool older
than the kernel prints `type N` where its libbpf lacks the name (checked: bpftool v7.1 with
libbpf 1.1 prints `type 32` for a netfilter program and `type 33` for an arena map); these
files print the name a bpftool built for the running kernel prints.

Not reproduced: the "  offloaded_to DEV" that bpftool prints after the tag / flags of objects
offloaded to a NIC (print_dev_plain; needs hardware or netdevsim, which this project cannot
test), and bpftool's later lines (memlock, btf_id, frozen, pids, pinned paths, prog_type and
attach_type of tracing links, ...), except key/value/max_entries in bpf/maps.

Kernel side (Linux 6.18): the bpf_prog_info / bpf_map_info / bpf_link_info fields come from
kernel/bpf/syscall.c bpf_prog_get_info_by_fd, bpf_map_get_info_by_fd, bpf_link_get_info_by_fd;
iterator link details from kernel/bpf/bpf_iter.c bpf_iter_link_fill_link_info,
map_iter.c (map_id), task_iter.c bpf_iter_fill_link_info (tid/pid), cgroup_iter.c
(cgroup_id = cgrp->kn->id, order). The per-CPU run-time statistics of a program are summed
by a may_goto loop over bpf_map_lookup_percpu_elem on a small per-CPU array map that the
program loads with (see emit_prog_stats and programs.MAP_PERCPU): this kernel's BTF carries no
__percpu type tags and its kallsyms no per-CPU symbols, so bpf_per_cpu_ptr() on prog->stats
is not available. bpf/progs therefore needs Linux 6.9 (may_goto); bpf/links needs
bpf_strncmp (5.17) and the bpf_link iterator (5.19).
"""

from __future__ import annotations

import dataclasses

from iterfs import asm
from iterfs.catalog import IterSpec
from iterfs.dsl.program import Addr, Field, IterProgram, ProgramSpec, Stack
from iterfs.programs import MAP_PERCPU

# include/uapi/linux/bpf.h
BPF_OBJ_NAME_LEN = 16
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_F_RDONLY_PROG = 1 << 7
# include/uapi/linux/btf.h
BTF_KIND_FUNC = 12
# tools/bpf/bpftool/main.h: the buffer get_prog_full_name() fills
MAX_PROG_FULL_NAME = 128
# kernel/bpf/bpf_iter.c: target names are short; 24 bytes hold every one bpftool compares
TARGET_BUF = 24

# tools/bpf/bpftool/link.c: is_iter_map_target, is_iter_task_target, is_iter_cgroup_target
ITER_MAP_TARGETS = ("bpf_map_elem", "bpf_sk_storage_map")
ITER_TASK_TARGETS = ("task", "task_file", "task_vma")
ITER_CGROUP_TARGET = "cgroup"
# link.c cgroup_order_string(): "unknown" for anything else
CGROUP_ORDER_UNKNOWN = "unknown"



# ------------------------------------------------------------------ type-name tables

def enum_names(btf, enum: str, prefix: str) -> dict[int, str]:
    """value → libbpf's name (lower-case suffix) for the enumerators of enum.

    libbpf's tables (tools/lib/bpf/libbpf.c map_type_name, prog_type_name, link_type_name)
    and bpftool's cgroup_order_string() (link.c) are these suffixes. An aliased value keeps
    the spelling that is not *_DEPRECATED; the __MAX_* sentinels lack the prefix."""
    out: dict[int, str] = {}
    for name, value in btf.enum_values(enum).items():
        suffix = name[len(prefix):].lower()
        if not name.startswith(prefix) or not suffix or value < 0:
            continue
        if value in out and (suffix.endswith("_deprecated")
                             or not out[value].endswith("_deprecated")):
            continue  # the first spelling that is not deprecated wins
        out[value] = suffix
    return out


@dataclasses.dataclass(frozen=True)
class NameTable:
    """Names packed into fixed-size NUL-padded entries: entry i holds the name of value i
    ("" for a hole)."""
    blob: bytes
    stride: int
    count: int

    @classmethod
    def of(cls, names: dict[int, str]) -> "NameTable":
        count = max(names) + 1 if names else 0
        stride = -(-(max((len(n) for n in names.values()), default=0) + 1) // 8) * 8 or 8
        blob = b"".join(names.get(i, "").encode().ljust(stride, b"\0") for i in range(count))
        return cls(blob, stride, count)


def emit_name_lookup(p: IterProgram, table: NameTable, val: str, dst: str, unknown: str) -> None:
    """dst = pointer to table's name for the value in register val, or jump to unknown when
    the value is past the table or a hole. Uses r1 and dst; val is left alone.

    The index is bounds-checked before it scales the rodata pointer, so the verifier sees a
    map-value pointer with a bounded variable offset."""
    if table.count == 0:
        p.emit(asm.ja(unknown))
        return
    off = p.string(table.blob)
    p.emit(asm.jmp("jge", val, table.count, unknown),
           asm.mov(dst, asm.reg(val)), asm.alu("mul", dst, table.stride),
           p.rodata_ptr("r1", off), asm.alu("add", "r1", asm.reg(dst)),
           asm.ldx("b", dst, "r1", 0), asm.jmp("jeq", dst, 0, unknown),
           asm.mov(dst, asm.Reg.R1))


# ------------------------------------------------------------------ builder additions

def printf(p: IterProgram, fmt: str, *args) -> None:
    p.seq_printf(fmt, *args)


def probe_read(p: IterProgram, dst_off: int, size: int, src: str, src_off: int = 0, *,
               string: bool = False) -> None:
    p.probe_read(dst_off, size, src, src_off, string=string)


def store_rodata_ptr(p: IterProgram, slot: int, text: str, tmp: str = "r2") -> None:
    p.emit(p.rodata_ptr(tmp, p.string(text)), asm.stx("dw", "r10", tmp, slot))


def name_parts(p: IterProgram, first_byte: str, slots: int, word: str) -> None:
    """Stack slots slots+0 / slots+16 = "name " / "  WORD" when the name's first byte
    (register first_byte) is not NUL, else "" / "WORD": bpftool's `if (*info->name)
    printf("name %s  ", ...); printf("WORD ...")` as "%s%s%s ..." with the name in between.

    WORD (the next field's label) rides in the last string because bpf_seq_printf refuses a
    %s followed by a letter or digit (kernel/bpf/helpers.c bpf_bprintf_prepare: -EINVAL)."""
    has = p.label_name("named")
    done = p.label_name("named_done")
    p.emit(asm.jmp("jne", first_byte, 0, has))
    store_rodata_ptr(p, slots, "")
    store_rodata_ptr(p, slots + 16, word)
    p.emit(asm.ja(done), asm.label(has))
    store_rodata_ptr(p, slots, "name ")
    store_rodata_ptr(p, slots + 16, "  " + word)
    p.emit(asm.label(done))


def percpu_map(dst: str) -> asm.Insn:
    return asm.ld_imm64(dst, MAP_PERCPU, src=asm.PseudoSrc.MAP_IDX)


# ------------------------------------------------------------------ bpf/maps

def build_maps(btf, *, names: dict[int, str] | None = None) -> ProgramSpec:
    table = NameTable.of(enum_names(btf, "bpf_map_type", "BPF_MAP_TYPE_")
                         if names is None else names)
    p = IterProgram("bpf_map", btf=btf, name="bpf_maps")
    m = p.ctx_ptr("map")
    p.exit_if_null(m)
    parts = p.stack(24)  # "name " / name pointer (unused) / "  "
    p.emit(asm.ldx("b", "r3", m, btf.offsetof("bpf_map", "name")))
    name_parts(p, "r3", parts, "flags")
    unknown, done = p.label_name("type_unknown"), p.label_name("done")
    p.load("r3", Field(m, "map_type"))
    emit_name_lookup(p, table, "r3", "r2", unknown)
    rest = ("%s%s%s 0x%x  key %uB  value %uB  max_entries %u\n",
            Stack(parts), Addr(m, "name"), Stack(parts + 16), Field(m, "map_flags"),
            Field(m, "key_size"), Field(m, "value_size"), Field(m, "max_entries"))
    printf(p, "%u: %s  " + rest[0], Field(m, "id"), "r2", *rest[1:])
    p.emit(asm.ja(done), asm.label(unknown))
    printf(p, "%u: type %u  " + rest[0], Field(m, "id"), "r3", *rest[1:])
    p.emit(asm.label(done))
    return p.build()


# ------------------------------------------------------------------ bpf/progs

def emit_full_name(p: IterProgram, aux: str, slot_name: int, buf: int, spill: int) -> None:
    """bpftool's get_prog_full_name(): when the name is 15 characters long and the program
    has BTF with func_info, the name is that of the BTF FUNC of func_info[0]. On success the
    name slot points at buf (MAX_PROG_FULL_NAME bytes of stack); on any miss it is kept.

    Walks kernel/bpf/btf.c btf_type_by_id() and btf_str_by_offset() for a non-split BTF
    (a program's own BTF): types[id - start_id], strings[name_off - start_str_off]."""
    btf = p.btf
    skip = p.label_name("fullname_skip")
    a = lambda path: btf.offsetof("bpf_prog_aux", path)  # noqa: E731
    b = lambda path: btf.offsetof("btf", path)  # noqa: E731
    p.emit(
        asm.ldx("b", "r1", aux, a("name") + BPF_OBJ_NAME_LEN - 2),
        asm.jmp("jeq", "r1", 0, skip),
        asm.ldx("w", "r1", aux, a("func_info_cnt")), asm.jmp("jeq", "r1", 0, skip),
        asm.ldx("dw", "r2", aux, a("func_info")), asm.jmp("jeq", "r2", 0, skip),
        asm.ldx("dw", "r1", aux, a("btf")), asm.jmp("jeq", "r1", 0, skip),
        asm.ldx("w", "r3", "r2", btf.offsetof("bpf_func_info", "type_id")),
        asm.ldx("w", "r4", "r1", b("start_id")), asm.jmp("jlt", "r3", asm.Reg.R4, skip),
        asm.alu("sub", "r3", asm.Reg.R4),
        asm.ldx("w", "r4", "r1", b("nr_types")), asm.jmp("jge", "r3", asm.Reg.R4, skip),
        asm.ldx("w", "r4", "r1", b("start_str_off")),
        asm.stx("dw", "r10", "r4", spill),
        asm.ldx("w", "r4", "r1", b("hdr.str_len")),
        asm.stx("dw", "r10", "r4", spill + 8),
        asm.ldx("dw", "r4", "r1", b("strings")),
        asm.stx("dw", "r10", "r4", spill + 16),
        asm.ldx("dw", "r4", "r1", b("types")),
        asm.alu("lsh", "r3", 3), asm.alu("add", "r3", asm.Reg.R4),
    )
    probe_read(p, spill + 24, 8, "r3")                     # struct btf_type *t
    p.emit(asm.jmp("jne", "r0", 0, skip),
           asm.ldx("dw", "r3", "r10", spill + 24), asm.jmp("jeq", "r3", 0, skip))
    probe_read(p, spill + 24, 8, "r3")                     # t->name_off, t->info
    p.emit(asm.jmp("jne", "r0", 0, skip),
           asm.ldx("w", "r3", "r10", spill + 28), asm.alu("rsh", "r3", 24),
           asm.alu("and", "r3", 0x1F), asm.jmp("jne", "r3", BTF_KIND_FUNC, skip),
           asm.ldx("w", "r3", "r10", spill + 24),          # name_off
           asm.ldx("dw", "r4", "r10", spill), asm.jmp("jlt", "r3", asm.Reg.R4, skip),
           asm.alu("sub", "r3", asm.Reg.R4),
           asm.ldx("dw", "r4", "r10", spill + 8), asm.jmp("jge", "r3", asm.Reg.R4, skip),
           asm.ldx("dw", "r4", "r10", spill + 16), asm.alu("add", "r3", asm.Reg.R4))
    probe_read(p, buf, MAX_PROG_FULL_NAME, "r3", string=True)
    p.emit(asm.jmp("jsle", "r0", 0, skip),
           asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", buf),
           asm.stx("dw", "r10", "r1", slot_name),
           asm.label(skip))


def emit_prog_stats(p: IterProgram, prog: str, ctx: int) -> None:
    """ctx+16/+24/+32 = run_cnt, run_time_ns, recursion_misses summed over the CPUs
    (kernel/bpf/syscall.c bpf_prog_get_stats; u64_stats_t reads are plain loads on 64-bit).

    prog->stats is a __percpu pointer. value = bpf_map_lookup_percpu_elem(map, 0, cpu) is
    per_cpu_ptr(array->pptrs[0], cpu) for this module's per-CPU array map, so
    value - pptrs[0] is that CPU's per-CPU offset and prog->stats plus it that CPU's
    struct bpf_prog_stats. The lookup returns NULL from nr_cpu_ids on, which ends the walk;
    the loop is a may_goto loop, which the verifier checks once instead of per CPU.
    Layout: ctx+0 prog->stats (a number), ctx+8 map address - pptrs[0], ctx+40 scratch,
    ctx+48 the CPU, ctx+56 the key, ctx+64.. one CPU's struct bpf_prog_stats."""
    btf = p.btf
    fields = [btf.offsetof("bpf_prog_stats", f) for f in ("cnt", "nsecs", "misses")]
    size = btf.sizeof(btf.find("bpf_prog_stats"))
    loop, next_cpu, done = (p.label_name("cpu_loop"), p.label_name("cpu_next"),
                            p.label_name("cpu_done"))
    p.emit(asm.st("dw", "r10", ctx + 16, 0), asm.st("dw", "r10", ctx + 24, 0),
           asm.st("dw", "r10", ctx + 32, 0), asm.st("dw", "r10", ctx + 48, 0),
           asm.st("dw", "r10", ctx + 56, 0))
    probe_read(p, ctx, 8, prog, btf.offsetof("bpf_prog", "stats"))
    # the map's address as a number: spill the map pointer and copy the slot
    p.emit(percpu_map("r1"), asm.stx("dw", "r10", "r1", ctx + 8))
    probe_read(p, ctx + 40, 8, "r10", ctx + 8)
    p.emit(asm.ldx("dw", "r3", "r10", ctx + 40),
           asm.alu("add", "r3", btf.offsetof("bpf_array", "pptrs")))
    probe_read(p, ctx + 8, 8, "r3")  # array->pptrs[0]
    p.emit(asm.ldx("dw", "r1", "r10", ctx + 40), asm.ldx("dw", "r2", "r10", ctx + 8),
           asm.alu("sub", "r1", asm.Reg.R2), asm.stx("dw", "r10", "r1", ctx + 8),
           asm.label(loop),
           asm.may_goto(done),
           percpu_map("r1"), asm.mov("r2", asm.Reg.R10), asm.alu("add", "r2", ctx + 56),
           asm.ldx("dw", "r3", "r10", ctx + 48),
           asm.call(asm.Helper.map_lookup_percpu_elem),
           asm.jmp("jeq", "r0", 0, done),
           percpu_map("r1"), asm.alu("sub", "r0", asm.Reg.R1),     # value - map
           asm.ldx("dw", "r1", "r10", ctx + 8), asm.alu("add", "r0", asm.Reg.R1),
           asm.ldx("dw", "r3", "r10", ctx), asm.alu("add", "r3", asm.Reg.R0),
           asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", ctx + 64), asm.mov("r2", size),
           asm.call(asm.Helper.probe_read_kernel),
           asm.jmp("jne", "r0", 0, next_cpu))
    for i, off in enumerate(fields):
        p.emit(asm.ldx("dw", "r1", "r10", ctx + 64 + off),
               asm.ldx("dw", "r2", "r10", ctx + 16 + 8 * i),
               asm.alu("add", "r2", asm.Reg.R1), asm.stx("dw", "r10", "r2", ctx + 16 + 8 * i))
    p.emit(asm.label(next_cpu),
           asm.ldx("dw", "r1", "r10", ctx + 48), asm.alu("add", "r1", 1),
           asm.stx("dw", "r10", "r1", ctx + 48), asm.ja(loop),
           asm.label(done))


def build_progs(btf, *, names: dict[int, str] | None = None) -> ProgramSpec:
    table = NameTable.of(enum_names(btf, "bpf_prog_type", "BPF_PROG_TYPE_")
                         if names is None else names)
    p = IterProgram("bpf_prog", btf=btf, name="bpf_progs")
    prog = p.ctx_ptr("prog")
    p.exit_if_null(prog)
    aux = p.ptr(Field(prog, "aux"))
    p.exit_if_null(aux)
    parts = p.stack(24)          # "name " / name pointer / "  "
    tag = p.stack(8)
    spill = p.stack(32)
    buf = p.stack(MAX_PROG_FULL_NAME)
    ctx = p.stack(64 + btf.sizeof(btf.find("bpf_prog_stats")))

    p.addr("r1", Addr(aux, "name"))
    p.emit(asm.stx("dw", "r10", "r1", parts + 8),
           asm.ldx("b", "r3", aux, btf.offsetof("bpf_prog_aux", "name")))
    name_parts(p, "r3", parts, "tag")
    emit_full_name(p, aux, parts + 8, buf, spill)
    # tag: the 8 bytes of prog->tag as one big-endian number for %016llx
    p.emit(asm.ldx("dw", "r1", prog, btf.offsetof("bpf_prog", "tag")),
           asm.endian("r1", 64, "be"), asm.stx("dw", "r10", "r1", tag))
    emit_prog_stats(p, prog, ctx)

    unknown, head_done = p.label_name("type_unknown"), p.label_name("head_done")
    p.load("r3", Field(prog, "type"))
    emit_name_lookup(p, table, "r3", "r2", unknown)
    rest = ("%s%s%s %016llx", Stack(parts), Stack(parts + 8), Stack(parts + 16), Stack(tag))
    printf(p, "%u: %s  " + rest[0], Field(aux, "id"), "r2", *rest[1:])
    p.emit(asm.ja(head_done), asm.label(unknown))
    printf(p, "%u: type %u  " + rest[0], Field(aux, "id"), "r3", *rest[1:])
    p.emit(asm.label(head_done))

    # gpl_compatible: a 1-bit field; load its byte only (a wider load would overlap the
    # preceding u16 `pages`, which the verifier refuses)
    gpl = btf.member("bpf_prog", "gpl_compatible")
    no_gpl = p.label_name("no_gpl")
    p.emit(asm.ldx("b", "r1", prog, gpl.offset_bits // 8),
           asm.alu("rsh", "r1", gpl.offset_bits % 8), asm.alu("and", "r1", 1),
           asm.jmp("jeq", "r1", 0, no_gpl))
    p.seq_write("  gpl")
    p.emit(asm.label(no_gpl))
    no_rt, no_miss = p.label_name("no_run_time"), p.label_name("no_misses")
    p.emit(asm.ldx("dw", "r1", "r10", ctx + 24), asm.jmp("jeq", "r1", 0, no_rt))
    printf(p, " run_time_ns %lld run_cnt %lld", Stack(ctx + 24), Stack(ctx + 16))
    p.emit(asm.label(no_rt), asm.ldx("dw", "r1", "r10", ctx + 32),
           asm.jmp("jeq", "r1", 0, no_miss))
    printf(p, " recursion_misses %lld", Stack(ctx + 32))
    p.emit(asm.label(no_miss))
    p.seq_write("\n")
    spec = p.build()
    return spec


# ------------------------------------------------------------------ bpf/links

def strncmp_eq(p: IterProgram, buf: int, text: str, target: str) -> None:
    """Jump to target when the NUL-terminated string at r10+buf equals text
    (bpf_strncmp with text from read-only rodata)."""
    p.emit(asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", buf), asm.mov("r2", TARGET_BUF),
           p.rodata_ptr("r3", p.string(text)), asm.call(asm.Helper.strncmp),
           asm.jmp("jeq", "r0", 0, target))


def build_links(btf, *, names: dict[int, str] | None = None) -> ProgramSpec:
    table = NameTable.of(enum_names(btf, "bpf_link_type", "BPF_LINK_TYPE_")
                         if names is None else names)
    orders = NameTable.of(enum_names(btf, "bpf_cgroup_iter_order", "BPF_CGROUP_ITER_"))
    link_type_iter = btf.enum_value("bpf_link_type", "BPF_LINK_TYPE_ITER")
    task_tid = btf.enum_value("bpf_iter_task_type", "BPF_TASK_ITER_TID")
    task_tgid = btf.enum_value("bpf_iter_task_type", "BPF_TASK_ITER_TGID")
    il = lambda path: btf.offsetof("bpf_iter_link", path)  # noqa: E731

    p = IterProgram("bpf_link", btf=btf, name="bpf_links")
    link = p.ctx_ptr("link")
    p.exit_if_null(link)
    prog_id = p.stack(8)
    tmp = p.stack(16)
    buf = p.stack(TARGET_BUF)

    # prog_id: link->prog ? link->prog->aux->id : 0 (bpf_link_get_info_by_fd)
    no_prog = p.label_name("no_prog")
    p.emit(asm.st("dw", "r10", prog_id, 0),
           asm.ldx("dw", "r1", link, btf.offsetof("bpf_link", "prog")),
           asm.jmp("jeq", "r1", 0, no_prog),
           asm.ldx("dw", "r1", "r1", btf.offsetof("bpf_prog", "aux")),
           asm.jmp("jeq", "r1", 0, no_prog),
           asm.ldx("w", "r1", "r1", btf.offsetof("bpf_prog_aux", "id")),
           asm.stx("dw", "r10", "r1", prog_id),
           asm.label(no_prog))

    unknown, head_done = p.label_name("type_unknown"), p.label_name("head_done")
    end = p.label_name("end")
    p.load("r3", Field(link, "type"))
    emit_name_lookup(p, table, "r3", "r2", unknown)
    printf(p, "%u: %s  prog %u  ", Field(link, "id"), "r2", Stack(prog_id))
    p.emit(asm.ja(head_done), asm.label(unknown))
    printf(p, "%u: type %u  prog %u  ", Field(link, "id"), "r3", Stack(prog_id))
    p.emit(asm.label(head_done))

    # iterator links: target_name and the target's parameters (link.c show_iter_plain)
    p.load("r1", Field(link, "type"))
    p.emit(asm.jmp("jne", "r1", link_type_iter, end))
    probe_read(p, tmp, 8, link, il("tinfo"))
    p.emit(asm.ldx("dw", "r3", "r10", tmp))
    probe_read(p, tmp, 8, "r3", btf.offsetof("bpf_iter_target_info", "reg_info"))
    p.emit(asm.ldx("dw", "r3", "r10", tmp))
    probe_read(p, tmp, 8, "r3", btf.offsetof("bpf_iter_reg", "target"))
    printf(p, "target_name %s  ", Stack(tmp))
    for i in range(0, TARGET_BUF, 8):
        p.emit(asm.st("dw", "r10", buf + i, 0))
    p.emit(asm.ldx("dw", "r3", "r10", tmp))
    probe_read(p, buf, TARGET_BUF, "r3", string=True)

    is_map, is_task, is_cgroup = (p.label_name("iter_map"), p.label_name("iter_task"),
                                  p.label_name("iter_cgroup"))
    for t in ITER_MAP_TARGETS:
        strncmp_eq(p, buf, t, is_map)
    for t in ITER_TASK_TARGETS:
        strncmp_eq(p, buf, t, is_task)
    strncmp_eq(p, buf, ITER_CGROUP_TARGET, is_cgroup)
    p.emit(asm.ja(end))

    # map_id: aux->map->id (kernel/bpf/map_iter.c bpf_iter_map_fill_link_info)
    p.emit(asm.label(is_map), asm.st("dw", "r10", tmp + 8, 0))
    probe_read(p, tmp, 8, link, il("aux.map"))
    no_map = p.label_name("no_map")
    p.emit(asm.ldx("dw", "r3", "r10", tmp), asm.jmp("jeq", "r3", 0, no_map))
    probe_read(p, tmp + 8, 4, "r3", btf.offsetof("bpf_map", "id"))
    p.emit(asm.label(no_map))
    printf(p, "map_id %u  ", Stack(tmp + 8))
    p.emit(asm.ja(end))

    # tid / pid (kernel/bpf/task_iter.c bpf_iter_fill_link_info; bpftool prints one space)
    p.emit(asm.label(is_task))
    probe_read(p, tmp, 8, link, il("aux.task.type"))
    tid, tgid = p.label_name("tid"), p.label_name("tgid")
    p.emit(asm.ldx("w", "r1", "r10", tmp), asm.ldx("w", "r2", "r10", tmp + 4),
           asm.stx("dw", "r10", "r2", tmp + 8),
           asm.jmp("jeq", "r2", 0, end),
           asm.jmp("jeq", "r1", task_tid, tid), asm.jmp("jeq", "r1", task_tgid, tgid),
           asm.ja(end), asm.label(tid))
    printf(p, "tid %u ", Stack(tmp + 8))
    p.emit(asm.ja(end), asm.label(tgid))
    printf(p, "pid %u ", Stack(tmp + 8))
    p.emit(asm.ja(end))

    # cgroup_id (aux->cgroup.start->kn->id) and order (kernel/bpf/cgroup_iter.c)
    p.emit(asm.label(is_cgroup), asm.st("dw", "r10", tmp + 8, 0))
    probe_read(p, tmp, 8, link, il("aux.cgroup.start"))
    no_cgrp = p.label_name("no_cgroup")
    p.emit(asm.ldx("dw", "r3", "r10", tmp), asm.jmp("jeq", "r3", 0, no_cgrp))
    probe_read(p, tmp, 8, "r3", btf.offsetof("cgroup", "kn"))
    p.emit(asm.ldx("dw", "r3", "r10", tmp), asm.jmp("jeq", "r3", 0, no_cgrp))
    probe_read(p, tmp + 8, 8, "r3", btf.offsetof("kernfs_node", "id"))
    p.emit(asm.label(no_cgrp))
    probe_read(p, tmp, 4, link, il("aux.cgroup.order"))
    order_unknown, order_done = p.label_name("order_unknown"), p.label_name("order_done")
    p.emit(asm.ldx("w", "r3", "r10", tmp))
    emit_name_lookup(p, orders, "r3", "r2", order_unknown)
    p.emit(asm.ja(order_done), asm.label(order_unknown),
           p.rodata_ptr("r2", p.string(CGROUP_ORDER_UNKNOWN)), asm.label(order_done))
    printf(p, "cgroup_id %llu  order %s  ", Stack(tmp + 8), "r2")

    p.emit(asm.label(end))
    p.seq_write("\n")
    return p.build()


# Listing BPF objects takes CAP_SYS_ADMIN (BPF_{MAP,PROG,LINK}_GET_NEXT_ID in
# kernel/bpf/syscall.c): the files are root-only too.
MODE = 0o400

FILES = [
    IterSpec("bpf/maps", "bpf_map", build_maps, mode=MODE,
             doc="bpftool map list (first line + key/value/max_entries)"),
    IterSpec("bpf/progs", "bpf_prog", build_progs, mode=MODE, doc="bpftool prog list (first line)"),
    IterSpec("bpf/links", "bpf_link", build_links, mode=MODE, doc="bpftool link list (first line)"),
]
