"""Label resolution and assembly of instruction lists into bytes."""

from __future__ import annotations

from dataclasses import replace

from .insn import INT16, INT32, MASK32, Insn, Label
from .opcodes import LD_IMM64, AsmError, Class, JumpOp, PseudoSrc


def flatten(items) -> list[Insn | Label]:
    """Insns and Labels of items, with nested lists and tuples spliced in."""
    out: list[Insn | Label] = []

    def walk(xs):
        for x in xs:
            if isinstance(x, (Insn, Label)):
                out.append(x)
            elif isinstance(x, (list, tuple)):
                walk(x)
            else:
                n = sum(isinstance(y, Insn) for y in out)
                raise AsmError(f"insn {n}: not an instruction or label: {x!r}", index=n)

    walk([items] if isinstance(items, (Insn, Label)) else items)
    return out


def _where(index: int, slot: int, insn: Insn) -> str:
    try:
        text = str(insn)
    except Exception:  # the message must not fail on a malformed insn
        text = repr(insn)
    return f"insn {index} (slot {slot}) `{text}`"


def _fail(index, slot, insn, msg) -> AsmError:
    return AsmError(f"{_where(index, slot, insn)}: {msg}", index=index, insn=insn)


def _offset_field(insn: Insn) -> str | None:
    """Where a label offset goes: "off", "imm", or None (takes no label)."""
    code = insn.op
    if code == Class.JMP32 | JumpOp.JA:
        return "imm"  # gotol
    if insn.is_call:
        return "imm" if insn.src == PseudoSrc.CALL else None
    if code == LD_IMM64:
        return "imm" if insn.src == PseudoSrc.FUNC else None
    return "off" if insn.is_jump else None


def link(items) -> list[Insn]:
    """Resolve label targets: offset = target_slot - (this_slot + 1).

    Returns the instructions with target cleared and off/imm filled in; every
    field is checked, and errors name the instruction index and slot.
    """
    flat = flatten(items)
    labels: dict[str, int] = {}
    placed: list[tuple[int, Insn]] = []  # (slot, insn)
    slot = 0
    for x in flat:
        if isinstance(x, Label):
            if x.name in labels:
                i = len(placed)
                raise AsmError(
                    f"insn {i} (slot {slot}): duplicate label {x.name!r}"
                    f" (first at slot {labels[x.name]})", index=i)
            labels[x.name] = slot
        else:
            placed.append((slot, x))
            slot += x.slots

    out: list[Insn] = []
    for i, (slot, insn) in enumerate(placed):
        if insn.target is not None:
            where = _offset_field(insn)
            if where is None:
                raise _fail(i, slot, insn, f"label {insn.target!r} on an insn that takes none")
            if insn.target not in labels:
                raise _fail(i, slot, insn, f"undefined label {insn.target!r}")
            delta = labels[insn.target] - (slot + 1)
            if where == "off":
                if not INT16[0] <= delta <= INT16[1]:
                    raise _fail(i, slot, insn,
                                f"jump offset {delta} to {insn.target!r} outside int16"
                                " (use gotol for a long unconditional jump)")
                insn = replace(insn, off=delta, target=None)
            else:
                if not INT32[0] <= delta <= INT32[1]:
                    raise _fail(i, slot, insn, f"offset {delta} outside int32")
                imm = delta & MASK32 if insn.op == LD_IMM64 else delta
                insn = replace(insn, imm=imm, target=None)
        try:
            insn.check()
        except AsmError as e:
            raise _fail(i, slot, insn, str(e)) from None
        out.append(insn)
    return out


def assemble(items) -> bytes:
    """Bytes of a program: Insns and Labels (nested lists allowed) → struct bpf_insn[]."""
    return b"".join(insn.encode() for insn in link(items))


def label_slots(items) -> dict[str, int]:
    """Slot of every label in items (for listings)."""
    labels: dict[str, int] = {}
    slot = 0
    for x in flatten(items):
        if isinstance(x, Label):
            labels.setdefault(x.name, slot)
        else:
            slot += x.slots
    return labels
