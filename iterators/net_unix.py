"""net/unix — /proc/net/unix byte for byte, from the unix iterator (Linux 5.15+).

The kernel's file (net/unix/af_unix.c, unix_seq_show, Linux 6.18):

    seq_puts(seq, "Num       RefCount Protocol Flags    Type St Inode Path\\n");
    seq_printf(seq, "%pK: %08X %08X %08X %04X %02X %5lu",
               s, refcount_read(&s->sk_refcnt), 0,
               s->sk_state == TCP_LISTEN ? __SO_ACCEPTCON : 0,
               s->sk_type,
               s->sk_socket ?
               (s->sk_state == TCP_ESTABLISHED ? SS_CONNECTED : SS_UNCONNECTED) :
               (s->sk_state == TCP_ESTABLISHED ? SS_CONNECTING : SS_DISCONNECTING),
               sock_i_ino(s));
    if (u->addr) {
        seq_putc(seq, ' ');
        len = u->addr->len - offsetof(struct sockaddr_un, sun_path);
        if (u->addr->name->sun_path[0]) len--;           // pathname: drop the NUL
        else { seq_putc(seq, '@'); i++; }                // abstract: '@' for the NUL
        for ( ; i < len; i++)
            seq_putc(seq, u->addr->name->sun_path[i] ?: '@');
    }
    seq_putc(seq, '\\n');

Here a record is ONE bpf_seq_printf("%pK") and ONE bpf_seq_write of the rest, which the
program formats itself on the stack (build):

    ": RRRRRRRR 00000000 FFFFFFFF TTTT SS " + "%5lu" of the inode + [" " + path] + "\n"

bpf_seq_printf costs per format character and per conversion (it parses the format twice,
in bpf_bprintf_prepare and bstr_printf): the same line as one printf of
"%pK: %08X 00000000 %08X %04X %02X %5lu%s%s\n" (build_printf, kept as the reference) costs
about 1 µs per socket here, twice /proc's; %pK alone plus a seq_write about 0.45 µs.
%pK is the only conversion that has to stay in the kernel (the pointer hash's key is the
kernel's, and kptr_restrict decides per reader).

- `%pK` is the struct sock (a unix_sock starts with it); bpf_seq_printf formats it with
  vsnprintf's %pK rules and the credentials of the process reading the iterator, like /proc.
- RefCount is sk_refcnt - 1: the unix iterator holds a reference on every socket of the
  bucket it is walking (bpf_iter_unix_hold_batch: sock_hold), which /proc's walk, under the
  bucket's spinlock, does not. Measured: every socket reads one higher without it.
- Protocol is always 0 (in the template); Flags is __SO_ACCEPTCON (1 << 16) for a listening
  socket (sk_state == TCP_LISTEN); Type is sk_type; St is the SS_* value above
  (SS_UNCONNECTED 1, SS_CONNECTING 2, SS_CONNECTED 3, SS_DISCONNECTING 4). Hex digits are
  upper case, as %X prints them.
- Inode is sock_i_ino(): `READ_ONCE(sk->sk_ino)` on kernels that have sk->sk_ino (6.17+),
  else SOCK_INODE(sk->sk_socket)->i_ino (_net.sock_inode). "%5lu": right-aligned in
  max(digits, 5) characters. Embryos (the server end of a connection not accepted yet)
  have no struct socket: inode 0, St 02.
- The path, when u->addr is set: " " and the name. A pathname name is NUL-terminated in
  the kernel right after the path (unix_bind_bsd makes addr->len strlen + 1 + 2), so it is
  copied with bpf_probe_read_kernel_str and its NUL becomes the "\n". An abstract name may
  hold NULs and is not terminated: its len bytes are copied with bpf_probe_read_kernel and
  an unrolled loop (108 steps, bounded by len; no bpf_loop or may_goto needed) replaces
  each NUL with '@' (the leading NUL is the kernel's '@'). sun_path is at most 108 bytes.
  Every other byte is copied raw, as the kernel's seq_putc does (a newline in an abstract
  name splits the record in /proc too).

Header: printed before the first socket (meta->seq_num == 0), or by the final call (NULL
socket) when the walk yielded nothing, which that call sees as seq_num == (u64)-1 (the unix
iterator decrements seq_num to skip its start token) — a network namespace without unix
sockets gets the header alone, as /proc prints it.

Order: both walks go through net->unx.table bucket by bucket, each bucket's list in order,
so the lines come in /proc's order. The iterator skips a socket unhashed (closed) between
batching and showing it (SEQ_SKIP), /proc skips it too.

KERNEL LIMIT (Linux 6.18, net/unix/af_unix.c): the unix iterator loses sockets at read()
boundaries. It takes a bucket's sockets as a batch and marks the bucket done
(st_bucket_done); when a read() ends inside a batch — the seq buffer (PAGE_SIZE << 3 =
32 KiB) is full, or the reader's buffer is — bpf_iter_unix_seq_stop drops the rest of the
batch and the next read()'s bpf_iter_unix_batch moves on to the NEXT bucket. Measured:
~4000 sockets (235 KB) read with 1 MiB reads lose 55-73 lines, with 4 KiB reads ~500. So
this file is exact while the whole output fits in ONE read() of at least 32 KiB (about 550
sockets with short names) — readers of the iterator fd must read with buffers that large —
and no program can avoid the loss (a stop anywhere but at the end drops the rest of a
batch, and the program can neither see nor change the batch).
The kernel fix is one line: reset st_bucket_done in bpf_iter_unix_seq_stop when
cur_sk < end_sk (the TCP iterator did that before it moved to socket cookies). netlink's
iterator resumes by position and has no such loss.
"""

from __future__ import annotations

from iterfs import asm
from iterfs.btf import BTFNotFound
from iterfs.catalog import IterSpec
from iterfs.dsl.program import Field, IterProgram, ProgramSpec, Stack

from ._net import sock_inode

HEADER = "Num       RefCount Protocol Flags    Type St Inode Path\n"
FORMAT_PRINTF = "%pK: %08X 00000000 %08X %04X %02X %5lu%s%s\n"

# include/net/tcp_states.h
TCP_ESTABLISHED, TCP_LISTEN = 1, 10
# include/uapi/linux/net.h
SS_UNCONNECTED, SS_CONNECTING, SS_CONNECTED, SS_DISCONNECTING = 1, 2, 3, 4
__SO_ACCEPTCON = 1 << 16
# include/uapi/linux/un.h
UNIX_PATH_MAX = 108
PATH_BUF = 112  # UNIX_PATH_MAX + the NUL, 8-aligned (build_printf)


def socket_state(p: IterProgram, u: str, lbl: dict) -> None:
    """r4 = the St column (unix_seq_show): with an sk_socket SS_UNCONNECTED or, when
    ESTABLISHED, SS_CONNECTED; without one SS_DISCONNECTING or, ESTABLISHED, SS_CONNECTING.
    r2 holds sk_state."""
    p.load("r3", Field(u, "sk.sk_socket"))
    p.emit(asm.jmp("jeq", "r3", 0, lbl["nosock"]),
           asm.mov("r4", SS_UNCONNECTED), asm.jmp("jne", "r2", TCP_ESTABLISHED, lbl["st"]),
           asm.mov("r4", SS_CONNECTED), asm.ja(lbl["st"]),
           asm.label(lbl["nosock"]),
           asm.mov("r4", SS_DISCONNECTING), asm.jmp("jne", "r2", TCP_ESTABLISHED, lbl["st"]),
           asm.mov("r4", SS_CONNECTING),
           asm.label(lbl["st"]))


def has_member(btf, struct: str, path: str) -> bool:
    try:
        btf.member(struct, path)
        return True
    except BTFNotFound:
        return False


def inode_arg(p: IterProgram, sk: str, path_to_sock: str):
    """The printf argument for sock_i_ino(sk): Field of sk->sk_ino where the kernel has it
    (sock_i_ino() is READ_ONCE(sk->sk_ino) there), else a register filled by
    _net.sock_inode from sk->sk_socket. path_to_sock is the path from sk's struct to its
    struct sock ("sk." for unix_sock/netlink_sock)."""
    if has_member(p.btf, "sock", "sk_ino"):
        return Field(sk, path_to_sock + "sk_ino")
    ino = p.reg()
    sock_inode(p, Field(sk, path_to_sock + "sk_socket"), ino)
    return ino


def emit_nul_to_at(p: IterProgram, buf: int, length: str, max_len: int) -> None:
    """buf[i] = buf[i] ?: '@' for i < length (a register, ≤ max_len): an unrolled loop the
    verifier walks once per step (no may_goto / bpf_loop needed). Clobbers r1."""
    done = p.label_name("nul_done")
    for i in range(max_len):
        nxt = p.label_name("nul_next")
        p.emit(asm.jmp("jle", length, i, done),
               asm.ldx("b", "r1", "r10", buf + i), asm.jmp("jne", "r1", 0, nxt),
               asm.st("b", "r10", buf + i, ord("@")), asm.label(nxt))
    p.emit(asm.label(done))


def emit_nul_to_at_ptr(p: IterProgram, base: str, length: str, max_len: int) -> None:
    """base[i] = base[i] ?: '@' for i < length; base is a stack pointer register (a variable
    offset the verifier bounds). Clobbers r1."""
    done = p.label_name("nul_done")
    for i in range(max_len):
        nxt = p.label_name("nul_next")
        p.emit(asm.jmp("jle", length, i, done),
               asm.ldx("b", "r1", base, i), asm.jmp("jne", "r1", 0, nxt),
               asm.st("b", base, i, ord("@")), asm.label(nxt))
    p.emit(asm.label(done))


def abstract_len(p: IterProgram, btf, sun: int, length: int, hi: str, lo: str) -> None:
    """r1 = the unix_address of an abstract name: its length (addr->len less sun_family,
    clamped to 1..UNIX_PATH_MAX) to the stack slot `length` and r2, r3 = the name."""
    p.emit(asm.ldx("w", "r2", "r1", btf.offsetof("unix_address", "len")),
           asm.alu("sub", "r2", sun - btf.offsetof("unix_address", "name")),
           asm.jmp("jle", "r2", UNIX_PATH_MAX, hi), asm.mov("r2", UNIX_PATH_MAX),
           asm.label(hi),
           asm.jmp("jge", "r2", 1, lo), asm.mov("r2", 1),
           asm.label(lo),
           asm.stx("dw", "r10", "r2", length),
           asm.mov("r3", asm.Reg.R1), asm.alu("add", "r3", sun))


def build_printf(btf) -> ProgramSpec:
    """The record as ONE bpf_seq_printf (FORMAT_PRINTF); kept as the reference and for the
    benchmark: about 1.7x slower per line than build()'s split."""
    p = IterProgram("unix", btf=btf, name="net_unix")
    u = p.ctx_ptr("unix_sk")
    p.header(HEADER, u)
    p.exit_if_null(u)

    ref, flags, st, sep, path, length = (p.stack(8) for _ in range(6))
    buf = p.stack(PATH_BUF)
    empty, space = p.string(""), p.string(" ")
    sun = btf.offsetof("unix_address", "name") + btf.offsetof("sockaddr_un", "sun_path")
    lbl = {n: p.label_name(n) for n in ("listen", "nosock", "st", "noaddr", "abstract",
                                        "lo_ok", "hi_ok")}

    # RefCount: the iterator's own reference taken off
    p.load("r1", Field(u, "sk.__sk_common.skc_refcnt.refs.counter"))
    p.emit(asm.alu("sub", "r1", 1), asm.stx("dw", "r10", "r1", ref))
    # Flags and St from sk_state and sk_socket
    p.load("r2", Field(u, "sk.__sk_common.skc_state"))
    p.emit(asm.mov("r3", 0), asm.jmp("jne", "r2", TCP_LISTEN, lbl["listen"]),
           asm.mov("r3", __SO_ACCEPTCON), asm.label(lbl["listen"]),
           asm.stx("dw", "r10", "r3", flags))
    socket_state(p, u, lbl)
    p.emit(asm.stx("dw", "r10", "r4", st))

    # Path
    p.emit(p.rodata_ptr("r1", empty), asm.stx("dw", "r10", "r1", sep),
           asm.stx("dw", "r10", "r1", path))
    p.load("r1", Field(u, "addr"))
    p.emit(asm.jmp("jeq", "r1", 0, lbl["noaddr"]),
           p.rodata_ptr("r2", space), asm.stx("dw", "r10", "r2", sep),
           asm.ldx("b", "r2", "r1", sun), asm.jmp("jeq", "r2", 0, lbl["abstract"]),
           # pathname: the kernel's copy is NUL-terminated right after the path
           asm.alu("add", "r1", sun), asm.stx("dw", "r10", "r1", path), asm.ja(lbl["noaddr"]),
           asm.label(lbl["abstract"]))
    abstract_len(p, btf, sun, length, lbl["hi_ok"], lbl["lo_ok"])
    p.emit(asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", buf),
           asm.call(asm.Helper.probe_read_kernel),
           asm.ldx("dw", "r3", "r10", length))
    emit_nul_to_at(p, buf, "r3", UNIX_PATH_MAX)
    p.emit(asm.ldx("dw", "r3", "r10", length),
           asm.jmp("jgt", "r3", UNIX_PATH_MAX, lbl["noaddr"]),  # (for the verifier)
           asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", buf), asm.alu("add", "r1", asm.Reg.R3),
           asm.st("b", "r1", 0, 0),
           asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", buf), asm.stx("dw", "r10", "r1", path),
           asm.label(lbl["noaddr"]))

    p.seq_printf(FORMAT_PRINTF, u, Stack(ref), Stack(flags), Field(u, "sk.sk_type"), Stack(st),
                 inode_arg(p, u, "sk."), Stack(sep), Stack(path))
    return p.build()


# The record after "%pK", formatted in the program (build): ": RRRRRRRR 00000000 FFFFFFFF
# TTTT SS " is a template with fixed positions, then the inode (%5lu) and the path.
TEMPLATE = b": 00000000 00000000 00000000 0000 00 " + b" " * 11  # 48 bytes: + the inode's pad
REF_AT, FLAGS_AT, TYPE_AT, ST_AT, INODE_AT = 2, 20, 29, 34, 37
INODE_MAX = 20                                       # digits of a u64
RECORD_BUF = -(-(INODE_AT + INODE_MAX + 1 + UNIX_PATH_MAX + 1 + 1) // 8) * 8  # 168


def emit_hex(p: IterProgram, val: str, off: int, nibbles: int) -> None:
    """r10[off .. off + nibbles) = val's low nibbles as upper-case hex ("%0<n>X"). Clobbers r1."""
    for i in range(nibbles):
        shift, digit = 4 * (nibbles - 1 - i), p.label_name("hex")
        p.emit(asm.mov("r1", asm.reg(val)))
        if shift:
            p.emit(asm.alu("rsh", "r1", shift))
        p.emit(asm.alu("and", "r1", 15), asm.alu("add", "r1", ord("0")),
               asm.jmp("jle", "r1", ord("9"), digit), asm.alu("add", "r1", ord("A") - ord("9") - 1),
               asm.label(digit), asm.stx("b", "r10", "r1", off + i))


def emit_decimal_right(p: IterProgram, val: str, last: str, max_digits: int) -> None:
    """Write val in decimal right-aligned so that its last digit is at [last] (a stack
    pointer register): [last - i] = digit i, until val is 0 (at least one digit).
    Destroys val. Clobbers r1."""
    done = p.label_name("dec_done")
    for i in range(max_digits):
        p.emit(asm.mov("r1", asm.reg(val)), asm.alu("mod", "r1", 10), asm.alu("add", "r1", ord("0")),
               asm.stx("b", last, "r1", -i), asm.alu("div", val, 10), asm.jmp("jeq", val, 0, done))
    p.emit(asm.label(done))


def emit_width(p: IterProgram, dst: str, val: str, min_width: int) -> None:
    """dst = the characters "%<min_width>lu" prints for val: min_width + (val >= 10**k) for
    every k from min_width up, summed without branches (((10**k - 1) - val) >> 63 is 1 when
    val >= 10**k, for val < 2**63). The verifier then carries ONE state with a range on to
    the rest of the program instead of a state per digit count, each walking the rest again
    (a branch ladder here made the program take 0.4 s and 128k instructions to verify).
    val >= 2**63: 19 or 20. Clobbers r1."""
    big, done = p.label_name("width_big"), p.label_name("width_done")
    p.emit(asm.mov("r1", asm.reg(val)), asm.alu("rsh", "r1", 63), asm.jmp("jne", "r1", 0, big),
           asm.mov(dst, min_width))
    for k in range(min_width, 19):
        p.emit(asm.ld_imm64("r1", 10 ** k - 1), asm.alu("sub", "r1", asm.reg(val)),
               asm.alu("rsh", "r1", 63), asm.alu("add", dst, asm.Reg.R1))
    p.emit(asm.ja(done), asm.label(big), asm.mov(dst, 19), asm.ld_imm64("r1", 10 ** 19),
           asm.jmp("jlt", val, asm.Reg.R1, done), asm.mov(dst, 20), asm.label(done))


def build(btf) -> ProgramSpec:
    """%pK by bpf_seq_printf, the rest of the record formatted here and written with one
    bpf_seq_write (see the module's docstring)."""
    p = IterProgram("unix", btf=btf, name="net_unix")
    u = p.ctx_ptr("unix_sk")
    p.header(HEADER, u)
    p.exit_if_null(u)
    p.seq_printf("%pK", u)

    width = p.reg()                       # characters the inode takes: max(digits, 5)
    buf, length = p.stack(RECORD_BUF), p.stack(8)
    sun = btf.offsetof("unix_address", "name") + btf.offsetof("sockaddr_un", "sun_path")
    lbl = {n: p.label_name(n) for n in ("listen", "nosock", "st", "noaddr", "abstract", "str_lo",
                                        "str_hi", "len_lo", "len_hi", "write")}
    # the template, then spaces up to the end: helpers writing at a variable stack offset
    # (the path's copy) need initialized memory there
    fill = TEMPLATE.ljust(RECORD_BUF, b" ")
    for i in range(0, RECORD_BUF, 8):
        p.emit(asm.ld_imm64("r1", int.from_bytes(fill[i:i + 8], "little")),
               asm.stx("dw", "r10", "r1", buf + i))

    # RefCount (the iterator's own reference taken off), Flags, Type, St
    p.load("r3", Field(u, "sk.__sk_common.skc_refcnt.refs.counter"))
    p.emit(asm.alu("sub", "r3", 1))
    emit_hex(p, "r3", buf + REF_AT, 8)
    p.load("r2", Field(u, "sk.__sk_common.skc_state"))
    p.emit(asm.jmp("jne", "r2", TCP_LISTEN, lbl["listen"]),
           asm.st("b", "r10", buf + FLAGS_AT + 3, ord("1")),   # __SO_ACCEPTCON: 00010000
           asm.label(lbl["listen"]))
    p.load("r3", Field(u, "sk.sk_type"))
    emit_hex(p, "r3", buf + TYPE_AT, 4)
    socket_state(p, u, lbl)
    emit_hex(p, "r4", buf + ST_AT, 2)

    # Inode, "%5lu": right-aligned in max(digits, 5) characters from INODE_AT
    ino = inode_arg(p, u, "sk.")
    p.value("r3", ino)
    emit_width(p, width, "r3", 5)
    p.emit(asm.mov("r4", asm.Reg.R10), asm.alu("add", "r4", buf + INODE_AT - 1),
           asm.alu("add", "r4", asm.reg(width)))
    emit_decimal_right(p, "r3", "r4", INODE_MAX)

    def at_end(dst: str, extra: int = 0) -> None:
        """dst = &buf[INODE_AT + width + extra]"""
        p.emit(asm.mov(dst, asm.Reg.R10), asm.alu("add", dst, buf + INODE_AT + extra),
               asm.alu("add", dst, asm.reg(width)))

    # Path: " name" when u->addr is set; then "\n". r5 = the record's length.
    p.load("r1", Field(u, "addr"))
    p.emit(asm.jmp("jeq", "r1", 0, lbl["noaddr"]))
    at_end("r2")
    p.emit(asm.st("b", "r2", 0, ord(" ")),
           asm.ldx("b", "r2", "r1", sun), asm.jmp("jeq", "r2", 0, lbl["abstract"]),
           # pathname: the kernel's copy is NUL-terminated right after the path
           asm.mov("r3", asm.Reg.R1), asm.alu("add", "r3", sun))
    at_end("r1", 1)
    p.emit(asm.mov("r2", UNIX_PATH_MAX + 1), asm.call(asm.Helper.probe_read_kernel_str),
           asm.jmp("jsgt", "r0", 0, lbl["str_lo"]), asm.mov("r0", 1), asm.label(lbl["str_lo"]),
           asm.jmp("jle", "r0", UNIX_PATH_MAX + 1, lbl["str_hi"]), asm.mov("r0", UNIX_PATH_MAX + 1),
           asm.label(lbl["str_hi"]))
    # r0 = path + NUL: the NUL's place takes the newline
    at_end("r1")
    p.emit(asm.alu("add", "r1", asm.Reg.R0), asm.st("b", "r1", 0, ord("\n")),
           asm.mov("r5", asm.reg(width)), asm.alu("add", "r5", INODE_AT + 1),
           asm.alu("add", "r5", asm.Reg.R0), asm.ja(lbl["write"]))

    # abstract: len bytes with NULs, '@' for each
    p.emit(asm.label(lbl["abstract"]))
    abstract_len(p, btf, sun, length, lbl["len_hi"], lbl["len_lo"])
    at_end("r1", 1)
    p.emit(asm.call(asm.Helper.probe_read_kernel), asm.ldx("dw", "r3", "r10", length),
           asm.jmp("jgt", "r3", UNIX_PATH_MAX, lbl["noaddr"]))  # (for the verifier)
    at_end("r4", 1)
    emit_nul_to_at_ptr(p, "r4", "r3", UNIX_PATH_MAX)
    p.emit(asm.alu("add", "r4", asm.Reg.R3), asm.st("b", "r4", 0, ord("\n")),
           asm.mov("r5", asm.reg(width)), asm.alu("add", "r5", INODE_AT + 2),
           asm.alu("add", "r5", asm.Reg.R3), asm.ja(lbl["write"]))

    p.emit(asm.label(lbl["noaddr"]))
    at_end("r1")
    p.emit(asm.st("b", "r1", 0, ord("\n")),
           asm.mov("r5", asm.reg(width)), asm.alu("add", "r5", INODE_AT + 1),
           asm.label(lbl["write"]))
    p.seq_write_stack(buf, "r5", RECORD_BUF)
    return p.build()


FILES = [IterSpec("net/unix", "unix", build, netns=True, pointers=True,
                  doc="/proc/net/unix (net/unix/af_unix.c unix_seq_show)")]
