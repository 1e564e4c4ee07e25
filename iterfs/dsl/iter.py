"""The seed's iterator DSL (clj-ebpf.dsl.iter) with the kernel's real semantics.

Where the seed is wrong on a real kernel (see ../shared/KERNEL-NOTES.md):
- context offsets come from BTF (`bpf_iter__<target>`), never from a table;
- helper ids are the uapi ones (probe_read_kernel_str is 115, not 45);
- returning 1 means "retry this object" (read() fails with EAGAIN), so iter_return_stop
  records the session in a map instead, and a gate at the program's entry keeps every later
  call of that session silent: the output really ends there;
- iter_section_name gives libbpf's section names ("iter/task").
"""

from __future__ import annotations

import dataclasses
import functools

from .. import asm
from ..btf import BTF, BTFNotFound
from ..programs import MAP_STOPPED, target_name
from . import (STOP_MARK, add, assemble, call, exit_insn, jmp_imm, label, ldx, mov,
               mov_reg)

__all__ = [
    "iter_prologue", "iter_prologue_with_meta", "iter_load_ctx_ptr", "iter_load_meta_field",
    "iter_context_offset", "iter_check_null", "iter_check_null_and_exit", "seq_write",
    "seq_printf_simple", "probe_read_kernel", "probe_read_kernel_str", "alloc_stack_buffer",
    "task_load_pid", "task_load_tgid", "iter_return_continue", "iter_return_stop",
    "iter_return", "build_iter_program", "minimal_task_iterator", "task_null_check_template",
    "make_iter_info", "iter_section_name", "STOP_SLOT",
]

# iter_return_stop keeps the session id in the lowest stack slot: programs that stop early
# must leave r10 -512 alone.
STOP_SLOT = -512
_STOP_STUB = "__iter_stop"

# The seed's context field names that the kernel spells differently: name → (target, member).
_SEED_FIELDS = {
    "tcp_sk": ("tcp", "sk_common"),
    "udp_sk": ("udp", "udp_sk"),
    "unix_sk": ("unix", "unix_sk"),
    "netlink_sk": ("netlink", "sk"),
}


def _btf(btf: BTF | None) -> BTF:
    return btf if btf is not None else BTF.vmlinux()


def _name(x) -> str:
    return str(x).lstrip(":").replace("-", "_")


def iter_prologue(ctx_reg="r6") -> list[asm.Insn]:
    """Save the context pointer (r1) in ctx_reg."""
    return [mov_reg(ctx_reg, "r1")]


def iter_prologue_with_meta(ctx_reg="r6", meta_reg="r8", *, btf: BTF | None = None) -> list[asm.Insn]:
    """Save the context pointer and load ctx->meta into meta_reg."""
    return [mov_reg(ctx_reg, "r1"), ldx("dw", meta_reg, ctx_reg, _meta_offset(btf))]


def _meta_offset(btf: BTF | None) -> int:
    # every bpf_iter__<target> starts with `struct bpf_iter_meta *meta`
    return _btf(btf).offsetof("bpf_iter__task", "meta")


@functools.lru_cache(maxsize=None)
def _ctx_offsets(btf: BTF, field: str) -> dict[str, int]:
    out = {}
    for target in btf.iter_targets():
        try:
            out[target] = btf.offsetof(f"bpf_iter__{target}", field)
        except BTFNotFound:
            pass
    return out


def iter_context_offset(field, target=None, *, btf: BTF | None = None) -> int:
    """Offset of a field in `struct bpf_iter__<target>` (read from BTF).

    Without a target the field must mean one offset in every context that has it."""
    b, field = _btf(btf), _name(field)
    if field in _SEED_FIELDS and target is None:
        target, field = _SEED_FIELDS[field]
    if target is not None:
        return b.offsetof(f"bpf_iter__{target_name(_name(target))}", field)
    offs = _ctx_offsets(b, field)
    if not offs:
        raise BTFNotFound(f"no iterator context of this kernel has a field '{field}'")
    if len(set(offs.values())) > 1:
        raise ValueError(f"context field '{field}' sits at different offsets "
                         f"({', '.join(f'{t}: {o}' for t, o in sorted(offs.items()))}); name the target")
    return next(iter(offs.values()))


def iter_load_ctx_ptr(ctx_reg, dst_reg, field, target=None, *, btf: BTF | None = None) -> asm.Insn:
    """dst = ctx->field (a pointer; NULL on the final call)."""
    return ldx("dw", dst_reg, ctx_reg, iter_context_offset(field, target, btf=btf))


def iter_load_meta_field(meta_reg, dst_reg, field, *, btf: BTF | None = None) -> asm.Insn:
    """dst = meta->field (seq, session_id or seq_num)."""
    return ldx("dw", dst_reg, meta_reg, _btf(btf).offsetof("bpf_iter_meta", _name(field)))


def iter_check_null(reg, off) -> list[asm.Insn]:
    """Jump by `off` (slots or a label) when reg is NULL."""
    return [jmp_imm("jeq", reg, 0, off)]


def iter_check_null_and_exit(reg) -> list[asm.Insn]:
    """Return 0 when reg is NULL (the final call of every iteration)."""
    return [jmp_imm("jne", reg, 0, 2), mov("r0", 0), exit_insn()]


def _seq(meta_reg, btf) -> asm.Insn:
    return ldx("dw", "r1", meta_reg, _btf(btf).offsetof("bpf_iter_meta", "seq"))


def seq_write(meta_reg, data_reg, length: int, *, btf: BTF | None = None) -> list[asm.Insn]:
    """bpf_seq_write(meta->seq, data_reg, length)."""
    return [_seq(meta_reg, btf), mov_reg("r2", data_reg), mov("r3", length),
            call(asm.Helper.seq_write)]


def seq_printf_simple(meta_reg, fmt_reg, fmt_size: int, data_reg=None, data_len: int = 0,
                      *, btf: BTF | None = None) -> list[asm.Insn]:
    """bpf_seq_printf(meta->seq, fmt_reg, fmt_size, data_reg, data_len).

    fmt must be read-only memory (a frozen rodata map value), data an array of u64."""
    data = [mov_reg("r4", data_reg), mov("r5", data_len)] if data_reg is not None \
        else [mov("r4", 0), mov("r5", 0)]
    return [_seq(meta_reg, btf), mov_reg("r2", fmt_reg), mov("r3", fmt_size), *data,
            call(asm.Helper.seq_printf)]


def _probe_read(helper, dst_reg, size: int, src_reg) -> list[asm.Insn]:
    return [mov_reg("r1", dst_reg), mov("r2", size), mov_reg("r3", src_reg), call(helper)]


def probe_read_kernel(dst_reg, size: int, src_reg) -> list[asm.Insn]:
    """bpf_probe_read_kernel(dst, size, src) — helper 113."""
    return _probe_read(asm.Helper.probe_read_kernel, dst_reg, size, src_reg)


def probe_read_kernel_str(dst_reg, size: int, src_reg) -> list[asm.Insn]:
    """bpf_probe_read_kernel_str(dst, size, src) — helper 115 (the seed's 45 is the legacy one)."""
    return _probe_read(asm.Helper.probe_read_kernel_str, dst_reg, size, src_reg)


def alloc_stack_buffer(reg, offset: int) -> list[asm.Insn]:
    """reg = r10 + offset (offset negative, ≥ -512)."""
    if not -512 <= offset < 0:
        raise ValueError(f"stack offset {offset} outside [-512, 0)")
    return [mov_reg(reg, "r10"), add(reg, offset)]


def _task_field(task_reg, dst_reg, member: str, btf) -> asm.Insn:
    b = _btf(btf)
    m = b.member("task_struct", member)
    size = b.sizeof(m.type)
    return ldx({1: "b", 2: "h", 4: "w", 8: "dw"}[size], dst_reg, task_reg, m.offset_bits // 8)


def task_load_pid(task_reg, dst_reg, *, btf: BTF | None = None) -> asm.Insn:
    """dst = task->pid (the thread id), offset from BTF."""
    return _task_field(task_reg, dst_reg, "pid", btf)


def task_load_tgid(task_reg, dst_reg, *, btf: BTF | None = None) -> asm.Insn:
    """dst = task->tgid (the process id), offset from BTF."""
    return _task_field(task_reg, dst_reg, "tgid", btf)


def iter_return_continue() -> list[asm.Insn]:
    return [mov("r0", 0), exit_insn()]


def iter_return_stop() -> list[asm.Insn]:
    """End this session's output here (two slots, like the seed's, so its offsets still hold).

    Jumps to a stub that records meta->session_id in the MAP_STOPPED map; the gate that
    dsl.assemble puts in front makes every later call of the session return 0 at once."""
    return [dataclasses.replace(mov("r0", 0), comment=STOP_MARK), asm.ja(_STOP_STUB)]


def iter_return(action="continue") -> list[asm.Insn]:
    """Return by keyword: "continue" (0), "stop" (end the output), "retry" (1: EAGAIN)."""
    action = _name(action)
    if action == "continue":
        return iter_return_continue()
    if action == "stop":
        return iter_return_stop()
    if action == "retry":
        return [mov("r0", 1), exit_insn()]
    raise ValueError(f"unknown iterator return action '{action}' (continue, stop or retry)")


def _stopped_map(dst) -> asm.Insn:
    return asm.ld_imm64(dst, MAP_STOPPED, src=asm.PseudoSrc.MAP_IDX)


def stop_gate(*, btf: BTF | None = None) -> list:
    """Entry gate and exit stub for programs that use iter_return_stop (added by assemble)."""
    session = _btf(btf).offsetof("bpf_iter_meta", "session_id")
    gate = [
        mov_reg("r6", "r1"),
        ldx("dw", "r1", "r6", _meta_offset(btf)),
        ldx("dw", "r1", "r1", session),
        asm.stx("dw", "r10", "r1", STOP_SLOT),
        mov_reg("r2", "r10"), add("r2", STOP_SLOT),
        _stopped_map("r1"),
        call(asm.Helper.map_lookup_elem),
        jmp_imm("jeq", "r0", 0, 2),
        mov("r0", 0), exit_insn(),
        mov_reg("r1", "r6"),
        asm.ja("__iter_body"),
        label(_STOP_STUB),
        mov_reg("r2", "r10"), add("r2", STOP_SLOT),
        mov_reg("r3", "r10"), add("r3", STOP_SLOT),
        _stopped_map("r1"), mov("r4", 0),
        call(asm.Helper.map_update_elem),
        mov("r0", 0), exit_insn(),
        label("__iter_body"),
    ]
    return gate


def build_iter_program(ctx_reg="r6", meta_reg="r8", body=(), default_action="continue",
                       *, btf: BTF | None = None) -> bytes:
    """Prologue with meta, the body, then the default return; assembled."""
    return assemble([iter_prologue_with_meta(ctx_reg, meta_reg, btf=btf), list(body),
                     iter_return(default_action)])


def task_null_check_template(body=(), ctx_reg="r6", task_reg="r7", meta_reg="r8",
                             *, btf: BTF | None = None) -> list:
    """Task iterator skeleton: prologue, task = ctx->task, exit on NULL, body, continue."""
    return [iter_prologue_with_meta(ctx_reg, meta_reg, btf=btf),
            iter_load_ctx_ptr(ctx_reg, task_reg, "task", "task", btf=btf),
            iter_check_null_and_exit(task_reg), list(body), iter_return_continue()]


def minimal_task_iterator(*, btf: BTF | None = None) -> bytes:
    """The smallest task iterator that loads: visits every task, prints nothing."""
    return assemble(task_null_check_template(btf=btf))


def iter_section_name(target) -> str:
    """libbpf's ELF section for an iterator program: "iter/task" (the seed's
    "iter/bpf_iter__task" is not a section libbpf accepts)."""
    return f"iter/{target_name(_name(target))}"


def make_iter_info(target, *, btf: BTF | None = None, **params) -> dict:
    """Program metadata: target, section, context type, load/attach constants, attach_btf_id
    and the bpf_iter_link_info bytes for the given parameters."""
    from ..programs import BPF_PROG_TYPE_TRACING, BPF_TRACE_ITER, attach_btf_id, iter_info
    t = target_name(_name(target))
    return {"target": t, "section": iter_section_name(t), "ctx_type": f"bpf_iter__{t}",
            "prog_type": BPF_PROG_TYPE_TRACING, "expected_attach_type": BPF_TRACE_ITER,
            "attach_btf_id": attach_btf_id(t, btf), "link_info": iter_info(**params)}
