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

Here each record is ONE bpf_seq_printf:

    "%pK: %08X 00000000 %08X %04X %02X %5lu%s%s\\n"

- `%pK` is the struct sock (a unix_sock starts with it); bpf_seq_printf formats it with
  vsnprintf's %pK rules and the credentials of the process reading the iterator, like /proc.
- RefCount is sk_refcnt - 1: the unix iterator holds a reference on every socket of the
  bucket it is walking (bpf_iter_unix_hold_batch: sock_hold), which /proc's walk, under the
  bucket's spinlock, does not. Measured: every socket reads one higher without it.
- Protocol is always 0 (a literal in the format); Flags is __SO_ACCEPTCON (1 << 16) for a
  listening socket (sk_state == TCP_LISTEN); St is the SS_* value above (SS_UNCONNECTED 1,
  SS_CONNECTING 2, SS_CONNECTED 3, SS_DISCONNECTING 4).
- Inode is sock_i_ino(): `READ_ONCE(sk->sk_ino)` on kernels that have sk->sk_ino (6.17+),
  else SOCK_INODE(sk->sk_socket)->i_ino (_net.sock_inode).
- The path, as two "%s": " " and the name when u->addr is set, "" and "" otherwise.
  A pathname name is NUL-terminated in the kernel at sun_path[len - 1] (unix_bind_bsd
  computes addr->len from strlen + 1), so its kernel address is passed straight to %s.
  An abstract name may hold NULs and is not terminated: its len bytes are copied to the
  stack with bpf_probe_read_kernel, an unrolled loop (108 steps, bounded by len) replaces
  each NUL with '@' (the leading NUL becomes the kernel's '@'), and a NUL is stored at
  [len]. Addresses are at most 108 bytes of sun_path (UNIX_PATH_MAX).

Header: printed before the first socket (meta->seq_num == 0), or by the final call (NULL
socket) when the walk yielded nothing, which that call sees as seq_num == (u64)-1 (the unix
iterator decrements seq_num to skip its start token) — a network namespace without unix
sockets gets the header alone, as /proc prints it.

Order: both walks go through net->unx.table bucket by bucket, each bucket's list in order,
so the lines come in /proc's order. The iterator skips a socket unhashed (closed) between
batching and showing it (SEQ_SKIP), /proc skips it too.
"""

from __future__ import annotations

from iterfs import asm
from iterfs.btf import BTFNotFound
from iterfs.catalog import IterSpec
from iterfs.dsl.program import Field, IterProgram, ProgramSpec, Stack

from ._net import sock_inode

HEADER = "Num       RefCount Protocol Flags    Type St Inode Path\n"
FORMAT = "%pK: %08X 00000000 %08X %04X %02X %5lu%s%s\n"

# include/net/tcp_states.h
TCP_ESTABLISHED, TCP_LISTEN = 1, 10
# include/uapi/linux/net.h
SS_UNCONNECTED, SS_CONNECTING, SS_CONNECTED, SS_DISCONNECTING = 1, 2, 3, 4
__SO_ACCEPTCON = 1 << 16
# include/uapi/linux/un.h
UNIX_PATH_MAX = 108
PATH_BUF = 112  # UNIX_PATH_MAX + the NUL, 8-aligned


def header_once(p: IterProgram, obj: str, text: str) -> None:
    """Print text before the first object, or at the final (NULL) call of a walk that
    yielded no object: socket iterators hand that call seq_num - 1 == (u64)-1 then (they
    decrement seq_num to skip the start token). Clobbers r0-r5."""
    obj_seen, skip, out = (p.label_name(n) for n in ("hdr_obj", "hdr_skip", "hdr_out"))
    p.emit(asm.ldx("dw", "r1", p.meta, p.btf.offsetof("bpf_iter_meta", "seq_num")),
           asm.jmp("jne", obj, 0, obj_seen),
           asm.jmp("jne", "r1", -1, skip),  # imm sign-extends: compares with 2**64 - 1
           asm.ja(out),
           asm.label(obj_seen), asm.jmp("jne", "r1", 0, skip),
           asm.label(out))
    p.seq_write(text)
    p.emit(asm.label(skip))


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


def build(btf) -> ProgramSpec:
    p = IterProgram("unix", btf=btf, name="net_unix")
    u = p.ctx_ptr("unix_sk")
    header_once(p, u, HEADER)
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
    p.load("r3", Field(u, "sk.sk_socket"))
    p.emit(asm.jmp("jeq", "r3", 0, lbl["nosock"]),
           asm.mov("r4", SS_UNCONNECTED), asm.jmp("jne", "r2", TCP_ESTABLISHED, lbl["st"]),
           asm.mov("r4", SS_CONNECTED), asm.ja(lbl["st"]),
           asm.label(lbl["nosock"]),
           asm.mov("r4", SS_DISCONNECTING), asm.jmp("jne", "r2", TCP_ESTABLISHED, lbl["st"]),
           asm.mov("r4", SS_CONNECTING),
           asm.label(lbl["st"]), asm.stx("dw", "r10", "r4", st))

    # Path
    p.emit(p.rodata_ptr("r1", empty), asm.stx("dw", "r10", "r1", sep),
           asm.stx("dw", "r10", "r1", path))
    p.load("r1", Field(u, "addr"))
    p.emit(asm.jmp("jeq", "r1", 0, lbl["noaddr"]),
           p.rodata_ptr("r2", space), asm.stx("dw", "r10", "r2", sep),
           asm.ldx("b", "r2", "r1", sun), asm.jmp("jeq", "r2", 0, lbl["abstract"]),
           # pathname: the kernel's copy is NUL-terminated right after the path
           asm.alu("add", "r1", sun), asm.stx("dw", "r10", "r1", path), asm.ja(lbl["noaddr"]),
           asm.label(lbl["abstract"]),
           asm.ldx("w", "r2", "r1", btf.offsetof("unix_address", "len")),
           asm.alu("sub", "r2", sun - btf.offsetof("unix_address", "name")),
           asm.jmp("jle", "r2", UNIX_PATH_MAX, lbl["hi_ok"]), asm.mov("r2", UNIX_PATH_MAX),
           asm.label(lbl["hi_ok"]),
           asm.jmp("jge", "r2", 1, lbl["lo_ok"]), asm.mov("r2", 1),
           asm.label(lbl["lo_ok"]),
           asm.stx("dw", "r10", "r2", length),
           asm.mov("r3", asm.Reg.R1), asm.alu("add", "r3", sun),
           asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", buf),
           asm.call(asm.Helper.probe_read_kernel),
           asm.ldx("dw", "r3", "r10", length))
    emit_nul_to_at(p, buf, "r3", UNIX_PATH_MAX)
    p.emit(asm.ldx("dw", "r3", "r10", length),
           asm.jmp("jgt", "r3", UNIX_PATH_MAX, lbl["noaddr"]),  # (for the verifier)
           asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", buf), asm.alu("add", "r1", asm.Reg.R3),
           asm.st("b", "r1", 0, 0),
           asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", buf), asm.stx("dw", "r10", "r1", path),
           asm.label(lbl["noaddr"]))

    p.seq_printf(FORMAT, u, Stack(ref), Stack(flags), Field(u, "sk.sk_type"), Stack(st),
                 inode_arg(p, u, "sk."), Stack(sep), Stack(path))
    return p.build()


FILES = [IterSpec("net/unix", "unix", build, netns=True,
                  doc="/proc/net/unix (net/unix/af_unix.c unix_seq_show)")]
