"""net/udp, net/udp6 — /proc/net/udp and /proc/net/udp6, byte for byte, from the udp iterator.

Kernel source followed (Linux 6.18)
-----------------------------------
net/ipv4/udp.c udp4_seq_show + udp4_format_sock:

    seq_setwidth(seq, 127);
    header: seq_puts(seq, "   sl  local_address rem_address   st tx_queue rx_queue tr "
                          "tm->when retrnsmt   uid  timeout inode ref pointer drops");
    record: seq_printf(f, "%5d: %08X:%04X %08X:%04X"
                " %02X %08X:%08X %02X:%08lX %08X %5u %8d %lu %d %pK %u",
                bucket, src, srcp, dest, destp, sp->sk_state,
                sk_wmem_alloc_get(sp), udp_rqueue_get(sp), 0, 0L, 0,
                from_kuid_munged(seq_user_ns(f), sk_uid(sp)), 0, sock_i_ino(sp),
                refcount_read(&sp->sk_refcnt), sp, sk_drops_read(sp));
    seq_pad(seq, '\\n');                      // every line padded with spaces to 127

    src/dest = inet_rcv_saddr/inet_daddr (a __be32 printed as a host-order number),
    srcp/destp = ntohs(inet_sport/inet_dport).

net/ipv6/udp.c udp6_seq_show + net/ipv6/datagram.c __ip6_dgram_sock_seq_show:

    header: IPV6_SEQ_DGRAM_HEADER = "  sl  local_address                         "
            "remote_address                        st tx_queue rx_queue tr tm->when "
            "retrnsmt   uid  timeout inode ref pointer drops\\n"   (no padding)
    record: seq_printf(seq, "%5d: %08X%08X%08X%08X:%04X %08X%08X%08X%08X:%04X "
                "%02X %08X:%08X %02X:%08lX %08X %5u %8d %lu %d %pK %u\\n",
                bucket, src->s6_addr32[0..3], srcp, dest->s6_addr32[0..3], destp,
                sp->sk_state, sk_wmem_alloc_get(sp), udp_rqueue_get(sp), 0, 0L, 0,
                from_kuid_munged(...sk_uid(sp)), 0, sock_i_ino(sp),
                refcount_read(&sp->sk_refcnt), sp, sk_drops_read(sp));

    sk_wmem_alloc_get = refcount_read(&sk->sk_wmem_alloc) - 1
    udp_rqueue_get    = atomic_read(&sk->sk_backlog.rmem_alloc) - udp_sk(sk)->forward_deficit
    sk_drops_read     = sk->sk_drop_counters ? drops0 + drops1 : atomic_read(&sk->sk_drops)
                        (include/net/sock.h of 6.18, numa_drop_counters; a BTF without
                        sk_drop_counters: sk_drops alone)
    sock_i_ino        = sk->sk_socket ? SOCK_INODE(sk->sk_socket)->i_ino : 0

The formats here: ONE bpf_seq_printf per line. The program renders the addresses itself
(the kernel's "%08X" words, uppercase, then ":%04X" of the port) and passes each as one
"%s"; the always-zero columns are literal text; udp passes pad() (127 - length spaces):

    udp   "%5d: %s %s %02X %08X:%08X 00:00000000 00000000 %5u        0 %lu %d %pK %u%s\\n"
    udp6  "%5d: %s %s %02X %08X:%08X 00:00000000 00000000 %5u        0 %lu %d %pK %u\\n"

Line order and `sl`
-------------------
/proc walks the port hash, net->ipv4.udp_table->hash[0..mask] (udp_get_first/udp_get_next;
`sl` is the slot index, state->bucket; sk_for_each over the slot, sockets of other netns
and of the other family skipped). The bpf iterator walks the (address, port) hash `hash2`
instead, in batches (bpf_iter_udp_batch), and ctx->bucket is a hash2 slot: neither its
order nor its bucket numbers are /proc's. So the program uses the iterator as a clock:
every call prints the NEXT socket of /proc's own walk, which the program performs itself
(inside the RCU read-side section the iterator holds around each call, like any udp
lookup). The cursor is per-session state: (slot, position in the slot's chain), the last
printed socket X (its address and inode number) and the inode of the socket that followed
it, Y. The next call goes on after X when X is still hashed and still that inode (O(1));
else it looks for X in the slot's chain as it is now and goes on after it, or, when X is
gone, at Y; with both gone it skips `position` nodes from the head, which is what /proc's
own seq_start does on every read(). Sockets are read through bpf_rdonly_cast (untrusted
BTF pointers: each load is a plain fault-safe load; the cast is inlined as a move); every
offset is from BTF.

The iterator calls the program once per socket of BOTH families in the netns and once
more, without a socket, at the end: at least as many calls as lines; the calls after the
walk has ended print nothing. The final call prints up to DRAIN lines for sockets created
while the walk ran (beyond DRAIN such sockets the rest is left out). When a call's output
did not fit the seq buffer the kernel repeats the call with the same seq_num: the program
then restores the cursor it had before that call.

refcount: the iterator holds a reference on each socket of the batch it is walking
(batch[cur_sk..end_sk), struct bpf_udp_iter_state); /proc holds none, so a printed socket
found in that batch gets its count minus one.

The header comes with the first call of a session: seq_num 0 with a socket, or the final
call with seq_num (u64)-1 when the netns has no UDP socket (the udp iterator decrements
seq_num to skip its start token).

Needs: may_goto (6.9), bpf_rdonly_cast (6.2), a per-netns udp table pointer (6.2).

Not reproduced: `uid` is sk_uid as the initial user namespace sees it (from_kuid_munged
into the opener's user namespace is not applied). Values of 10^19 and more would be
miscounted for the padding (uid, drops are 32-bit; inode numbers are far below).
"""

from __future__ import annotations

from iterfs import asm
from iterfs.catalog import IterSpec
from iterfs.dsl.program import IterProgram, ProgramSpec, Stack

AF_INET, AF_INET6 = 2, 10
WIDTH4 = 127      # udp4_seq_show: seq_setwidth(seq, 127)
DRAIN = 128       # lines the final call may add (128 * 164 bytes < the 32 KiB seq buffer)
HEADER4 = ("   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   "
           "uid  timeout inode ref pointer drops").ljust(WIDTH4) + "\n"
HEADER6 = ("  sl  local_address                         remote_address                        "
           "st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n")
FMT4 = "%5d: %s %s %02X %08X:%08X 00:00000000 00000000 %5u        0 %lu %d %pK %u%s\n"
FMT6 = "%5d: %s %s %02X %08X:%08X 00:00000000 00000000 %5u        0 %lu %d %pK %u\n"
# udp4 line length without the variable-width columns: "%5d: " 7, 2 * (13 + 1), st 3,
# tx:rx 18, the zero columns 21, " " after uid, timeout 9, " " after inode and after ref,
# %pK (always 16 characters on 64-bit: hashed, raw or zeros) + " "
FIXED4 = 7 + 28 + 3 + 18 + 21 + 1 + 9 + 1 + 1 + 17

# per-session state (the u64[8] of IterProgram.session())
S_KEY, S_BEFORE, S_CUR, S_NODE, S_INO, S_BNODE, S_BINO, S_ZERO = (8 * i for i in range(8))
# S_KEY: ((seq_num + 1) << 1 | no-socket) of the last call; S_CUR: slot << 32 | position of
# the walk; S_NODE: the last printed socket X's node; S_INO: X's inode << 32 | the inode of
# the socket after X when X was printed (Y); S_BEFORE, S_BNODE, S_BINO: the same before
# the last call (restored when the kernel repeats it).
# S_ZERO is never written: a 0 the verifier cannot know. Loop counters start from it, so
# no branch on them has a known outcome: the verifier marks the operands of such branches
# precise, and precise scalars are not widened at a may_goto, so a loop whose counter starts
# at a constant would be verified once per counter value.

U64 = "atomic64_t"  # a struct whose only member is a 64-bit integer: an untrusted u64 view


# ----------------------------------------------------------------------- builder additions



def peek64(p: IterProgram, dst: str, src: str, off: int = 0) -> None:
    """dst = *(u64 *)(src + off) as a plain number (not a BTF pointer). Clobbers r0-r5."""
    p.rdonly_cast(dst, src, U64, off)
    p.emit(asm.ldx("dw", dst, dst, 0))


def hex8(p: IterProgram, src: str, dst: str, tmp: str, const: str) -> None:
    """dst = the 8 characters "%08X" prints for the low 32 bits of src, as a u64 whose
    little-endian bytes are the characters in order. SWAR, no branches: byte-swap, spread
    the bytes to 16-bit lanes, split the nibbles, then '0' + n + 7 * (n > 9) in all bytes."""
    def const64(v: int) -> None:
        p.emit(asm.ld_imm64(const, v))

    p.emit(asm.mov(dst, asm.reg(src)), asm.endian(dst, 32, "be"),       # MSB first, zero-ext
           asm.mov(tmp, asm.reg(dst)), asm.alu("rsh", tmp, 16), asm.alu("lsh", tmp, 32),
           asm.alu("and", dst, 0xFFFF), asm.alu("or", dst, asm.reg(tmp)))
    const64(0x0000FF000000FF00)
    p.emit(asm.mov(tmp, asm.reg(dst)), asm.alu("and", tmp, asm.reg(const)),
           asm.alu("lsh", tmp, 8))
    const64(0x000000FF000000FF)
    p.emit(asm.alu("and", dst, asm.reg(const)), asm.alu("or", dst, asm.reg(tmp)))
    const64(0x000F000F000F000F)
    p.emit(asm.mov(tmp, asm.reg(dst)), asm.alu("and", tmp, asm.reg(const)),
           asm.alu("lsh", tmp, 8),
           asm.alu("rsh", dst, 4), asm.alu("and", dst, asm.reg(const)),
           asm.alu("or", dst, asm.reg(tmp)))                              # a nibble a byte
    const64(0x0606060606060606)
    p.emit(asm.mov(tmp, asm.reg(dst)), asm.alu("add", tmp, asm.reg(const)),
           asm.alu("rsh", tmp, 4))
    const64(0x0101010101010101)
    p.emit(asm.alu("and", tmp, asm.reg(const)), asm.alu("mul", tmp, 7),
           asm.alu("add", dst, asm.reg(tmp)))
    const64(0x3030303030303030)
    p.emit(asm.alu("add", dst, asm.reg(const)))


def port_suffix(p: IterProgram, sk: str, off: int, dst: str) -> None:
    """dst = ":%04X" of ntohs(*(__be16 *)(sk + off)) and a NUL, as a little-endian u64.
    Clobbers r2-r4."""
    p.emit(asm.ldx("h", "r2", sk, off), asm.endian("r2", 16, "be"), asm.alu("lsh", "r2", 16))
    hex8(p, "r2", dst, "r3", "r4")
    p.emit(asm.alu("lsh", dst, 32), asm.alu("rsh", dst, 24), asm.alu("or", dst, ord(":")))


def digits(p: IterProgram, dst: str, src: str, tmp: str, *, signed: bool = False,
           min_width: int = 1) -> None:
    """dst = how many characters "%<min_width>u" ("%<min_width>d" when signed; src holds the
    sign-extended value) prints for src, without branches: 1 + the number of k in 1..18
    with src >= 10^k, each term the sign bit of 10^k - 1 - src. (IterProgram.digits is a
    ladder of branches; four of them in a line, with the sum precise because pad() indexes
    rodata by it, make the verifier walk every combination.) Values below 10^19; src is
    clobbered."""
    p.emit(asm.mov(dst, 1))
    if signed:
        p.emit(asm.mov(tmp, asm.reg(src)), asm.alu("arsh", tmp, 63),     # 0 or -1
               asm.alu("xor", src, asm.reg(tmp)), asm.alu("sub", src, asm.reg(tmp)),
               asm.alu("sub", dst, asm.reg(tmp)))                        # the '-'
    for k in range(1, 19):
        v = 10 ** k - 1
        p.emit(asm.mov(tmp, v) if v < 2 ** 31 else asm.ld_imm64(tmp, v),
               asm.alu("sub", tmp, asm.reg(src)), asm.alu("rsh", tmp, 63),
               asm.alu("add", dst, asm.reg(tmp)))
    if min_width > 1:  # dst += (min_width - dst) * (dst < min_width)
        p.emit(asm.mov(tmp, asm.reg(dst)), asm.alu("sub", tmp, min_width),
               asm.alu("rsh", tmp, 63),
               asm.mov(src, min_width), asm.alu("sub", src, asm.reg(dst)),
               asm.alu("mul", tmp, asm.reg(src)), asm.alu("add", dst, asm.reg(tmp)))


def sk_ino(p: IterProgram, sk: str, dst: str) -> None:
    """dst = sock_i_ino(sk): SOCK_INODE(sk->sk_socket)->i_ino, 0 without a socket, for a
    typed sock/udp_sock register (struct socket sits in struct socket_alloc before its
    inode). Clobbers r0-r5."""
    b = p.btf
    zero = p.label_name("noino")
    peek64(p, "r3", sk, b.offsetof("sock", "sk_socket"))
    p.emit(asm.mov(dst, 0), asm.jmp("jeq", "r3", 0, zero))
    p.rdonly_cast("r3", "r3", "socket_alloc", -b.offsetof("socket_alloc", "socket"))
    p.emit(asm.ldx("dw", dst, "r3", b.offsetof("socket_alloc", "vfs_inode.i_ino")),
           asm.label(zero))


def store(p: IterProgram, slot: int, reg: str) -> None:
    p.emit(asm.stx("dw", "r10", reg, slot))


def load(p: IterProgram, reg: str, slot: int) -> None:
    p.emit(asm.ldx("dw", reg, "r10", slot))


# ----------------------------------------------------------------------- the program

def build_family(btf, family: int) -> ProgramSpec:
    v6 = family == AF_INET6
    p = IterProgram("udp", btf=btf, name="net_udp6" if v6 else "net_udp")
    b = btf
    sock = lambda path: b.offsetof("udp_sock", path)  # noqa: E731
    off_node = b.offsetof("sock", "__sk_common.skc_node")
    hslot_size = b.sizeof(b.find("udp_hslot"))

    R = p.reg()        # the socket being looked at (callee-saved: kfunc calls in between)
    S = p.session()    # the session's u64[8]
    slots = {n: p.stack(8) for n in ("hash", "mask", "net", "budget", "node", "b", "k", "i",
                                     "sk", "ino", "st", "tx", "rx", "uid", "ref", "drops",
                                     "bi", "bend", "bbatch")}
    bufsz = 40 if v6 else 16
    src_buf, dst_buf = p.stack(bufsz), p.stack(bufsz)
    L = p.label_name
    retry, fresh, keyed, hdr, nohdr = L("retry"), L("fresh"), L("keyed"), L("hdr"), L("nohdr")
    loop, from_head, skip, scan, check, nextnode, done = (
        L("loop"), L("from_head"), L("skip"), L("scan"), L("check"), L("nextnode"), L("done"))

    # ---- the call's key: ((seq_num + 1) << 1) | (no socket); a repeat restores the cursor
    p.emit(asm.ldx("dw", "r3", p.ctx, b.offsetof("bpf_iter__udp", "udp_sk")),
           asm.mov("r2", 0), asm.jmp("jne", "r3", 0, keyed), asm.mov("r2", 1),
           asm.label(keyed),
           asm.ldx("dw", "r1", p.meta, b.offsetof("bpf_iter_meta", "seq_num")),
           asm.alu("add", "r1", 1), asm.alu("lsh", "r1", 1), asm.alu("or", "r1", asm.reg("r2")),
           asm.ldx("dw", "r4", S, S_KEY), asm.jmp("jeq", "r4", asm.reg("r1"), retry),
           asm.stx("dw", S, "r1", S_KEY))
    for dst, src in ((S_BEFORE, S_CUR), (S_BNODE, S_NODE), (S_BINO, S_INO)):
        p.emit(asm.ldx("dw", "r1", S, src), asm.stx("dw", S, "r1", dst))
    p.emit(asm.ja(fresh), asm.label(retry))
    for dst, src in ((S_CUR, S_BEFORE), (S_NODE, S_BNODE), (S_INO, S_BINO)):
        p.emit(asm.ldx("dw", "r1", S, src), asm.stx("dw", S, "r1", dst))
    p.emit(asm.label(fresh))

    # ---- lines this call may print: 1, DRAIN on the final call; the header on the first
    p.emit(asm.ldx("dw", "r1", p.meta, b.offsetof("bpf_iter_meta", "seq_num")),
           asm.ldx("dw", "r4", S, S_ZERO), asm.alu("add", "r4", DRAIN),
           asm.jmp("jeq", "r2", 1, f"{hdr}_null"),
           asm.alu("sub", "r4", DRAIN - 1), asm.jmp("jeq", "r1", 0, hdr), asm.ja(nohdr),
           asm.label(f"{hdr}_null"), asm.jmp("jne", "r1", -1, nohdr),
           asm.label(hdr))
    store(p, slots["budget"], "r4")
    p.seq_write(HEADER6 if v6 else HEADER4)
    p.emit(asm.ja(f"{nohdr}_stored"), asm.label(nohdr))
    store(p, slots["budget"], "r4")
    p.emit(asm.label(f"{nohdr}_stored"))

    # ---- the netns the iterator was created in (seq_file_net: the seq_net_private at the
    #      start of the iterator's private state) and its table, net->ipv4.udp_table (the
    #      one udp_get_table_seq() gives /proc/net/udp and udp6)
    p.emit(asm.ldx("dw", "r1", p.meta, b.offsetof("bpf_iter_meta", "seq")),
           asm.ldx("dw", "r1", "r1", b.offsetof("seq_file", "private")))
    peek64(p, R, "r1", b.offsetof("seq_net_private", "net"))
    store(p, slots["net"], R)
    peek64(p, R, R, b.offsetof("net", "ipv4.udp_table"))
    p.rdonly_cast(R, R, "udp_table")
    p.emit(asm.ldx("w", "r1", R, b.offsetof("udp_table", "mask")))
    store(p, slots["mask"], "r1")
    peek64(p, "r1", R, b.offsetof("udp_table", "hash"))
    store(p, slots["hash"], "r1")

    def head_of_bucket(breg: str, dst: str) -> None:
        """dst = udptable->hash[breg].head.first (a number). Clobbers r0-r5."""
        p.emit(asm.mov("r3", asm.reg(breg)), asm.alu("mul", "r3", hslot_size))
        load(p, "r4", slots["hash"])
        p.emit(asm.alu("add", "r3", asm.reg("r4")))
        peek64(p, dst, "r3", b.offsetof("udp_hslot", "head.first"))

    # ---- the walk: one line a call (DRAIN on the final call)
    p.emit(asm.label(loop), asm.may_goto(done))
    load(p, "r1", slots["budget"])
    p.emit(asm.jmp("jeq", "r1", 0, done), asm.alu("sub", "r1", 1))
    store(p, slots["budget"], "r1")
    p.emit(asm.ldx("dw", "r1", S, S_CUR), asm.mov("r2", asm.reg("r1")),
           asm.alu("rsh", "r1", 32), asm.mov("r2", asm.reg("r2"), alu32=True))
    store(p, slots["b"], "r1")
    store(p, slots["k"], "r2")
    # the last printed socket X, if still hashed and still the same socket: go on after it
    p.emit(asm.ldx("dw", "r1", S, S_NODE), asm.jmp("jeq", "r1", 0, from_head))
    p.rdonly_cast(R, "r1", "sock", -off_node)
    p.emit(asm.ldx("dw", "r1", R, b.offsetof("sock", "__sk_common.skc_node.pprev")),
           asm.jmp("jeq", "r1", 0, from_head))
    sk_ino(p, R, "r1")
    p.emit(asm.mov("r1", asm.reg("r1"), alu32=True), asm.jmp("jeq", "r1", 0, from_head),
           asm.ldx("dw", "r2", S, S_INO), asm.alu("rsh", "r2", 32),
           asm.jmp("jne", "r1", asm.reg("r2"), from_head))
    peek64(p, "r1", R, b.offsetof("sock", "__sk_common.skc_node.next"))
    store(p, slots["node"], "r1")
    p.emit(asm.ja(scan))

    # else, in the slot's chain as it is now: after X, found by its inode; else at Y, the
    # socket that followed X when X was printed (X is gone); else k nodes from the head
    # (both gone: /proc's own way, seq_start skips by position)
    search, by_position = L("search"), L("by_position")
    p.emit(asm.label(from_head), asm.st("dw", S, S_NODE, 0))
    load(p, "r1", slots["b"])
    load(p, "r2", slots["mask"])
    p.emit(asm.jmp("jgt", "r1", asm.reg("r2"), done))
    head_of_bucket("r1", "r1")
    store(p, slots["node"], "r1")
    p.emit(asm.ldx("dw", "r2", S, S_INO), asm.jmp("jeq", "r2", 0, by_position),
           asm.ldx("dw", "r2", S, S_ZERO), asm.stx("dw", "r10", "r2", slots["i"]),
           asm.label(search), asm.may_goto(done))
    load(p, "r1", slots["node"])
    p.emit(asm.jmp("jeq", "r1", 0, by_position))
    p.rdonly_cast(R, "r1", "sock", -off_node)
    sk_ino(p, R, "r1")
    p.emit(asm.mov("r1", asm.reg("r1"), alu32=True), asm.jmp("jeq", "r1", 0, f"{search}_next"),
           asm.ldx("dw", "r2", S, S_INO), asm.mov("r3", asm.reg("r2"), alu32=True),
           asm.alu("rsh", "r2", 32),
           asm.jmp("jeq", "r1", asm.reg("r3"), f"{search}_y"),
           asm.jmp("jne", "r1", asm.reg("r2"), f"{search}_next"))
    load(p, "r1", slots["i"])                                        # X: resume after it
    p.emit(asm.alu("add", "r1", 1))
    store(p, slots["k"], "r1")
    peek64(p, "r1", R, b.offsetof("sock", "__sk_common.skc_node.next"))
    store(p, slots["node"], "r1")
    p.emit(asm.ja(scan), asm.label(f"{search}_y"))                   # Y: resume at it
    load(p, "r1", slots["i"])
    store(p, slots["k"], "r1")
    p.emit(asm.ja(scan), asm.label(f"{search}_next"))
    load(p, "r1", slots["i"])
    p.emit(asm.alu("add", "r1", 1))
    store(p, slots["i"], "r1")
    peek64(p, "r1", R, b.offsetof("sock", "__sk_common.skc_node.next"))
    store(p, slots["node"], "r1")
    p.emit(asm.ja(search))

    p.emit(asm.label(by_position))
    load(p, "r1", slots["b"])
    head_of_bucket("r1", "r1")
    store(p, slots["node"], "r1")
    p.emit(asm.ldx("dw", "r2", S, S_ZERO), asm.stx("dw", "r10", "r2", slots["i"]),
           asm.label(skip), asm.may_goto(done))
    load(p, "r1", slots["i"])
    load(p, "r2", slots["k"])
    p.emit(asm.jmp("jge", "r1", asm.reg("r2"), scan), asm.alu("add", "r1", 1))
    store(p, slots["i"], "r1")
    load(p, "r1", slots["node"])
    p.emit(asm.jmp("jeq", "r1", 0, scan))
    peek64(p, "r1", "r1", b.offsetof("hlist_node", "next"))
    store(p, slots["node"], "r1")
    p.emit(asm.ja(skip))

    # scan on: the next slot when a chain ends; skip other netns and the other family
    p.emit(asm.label(scan), asm.may_goto(done))
    load(p, "r1", slots["node"])
    p.emit(asm.jmp("jne", "r1", 0, check))
    load(p, "r1", slots["b"])
    p.emit(asm.alu("add", "r1", 1), asm.ldx("dw", "r2", S, S_ZERO),
           asm.stx("dw", "r10", "r2", slots["k"]))
    store(p, slots["b"], "r1")
    load(p, "r2", slots["mask"])
    p.emit(asm.jmp("jle", "r1", asm.reg("r2"), f"{scan}_head"),
           asm.alu("lsh", "r1", 32), asm.stx("dw", S, "r1", S_CUR),    # the walk is over
           asm.st("dw", S, S_NODE, 0), asm.ja(done),
           asm.label(f"{scan}_head"))
    head_of_bucket("r1", "r1")
    store(p, slots["node"], "r1")
    p.emit(asm.ja(scan))

    p.emit(asm.label(check))
    p.rdonly_cast(R, "r1", "udp_sock", -off_node)
    load(p, "r1", slots["k"])
    p.emit(asm.alu("add", "r1", 1))
    store(p, slots["k"], "r1")
    p.emit(asm.ldx("h", "r1", R, sock("inet.sk.__sk_common.skc_family")),
           asm.jmp("jne", "r1", family, nextnode))
    peek64(p, "r1", R, sock("inet.sk.__sk_common.skc_net"))
    load(p, "r2", slots["net"])
    p.emit(asm.jmp("jeq", "r1", asm.reg("r2"), f"{check}_print"))
    p.emit(asm.label(nextnode))
    peek64(p, "r1", R, sock("inet.sk.__sk_common.skc_node.next"))
    store(p, slots["node"], "r1")
    p.emit(asm.ja(scan))

    # ---- one line
    p.emit(asm.label(f"{check}_print"))
    emit_line(p, R, v6, slots, src_buf, dst_buf)
    # the cursor: this slot, the position after this socket, the socket itself
    load(p, "r1", slots["b"])
    load(p, "r2", slots["k"])
    p.emit(asm.alu("lsh", "r1", 32), asm.alu("or", "r1", asm.reg("r2")),
           asm.stx("dw", S, "r1", S_CUR))
    load(p, "r1", slots["node"])
    p.emit(asm.stx("dw", S, "r1", S_NODE))
    # S_INO: X's inode << 32 | the inode of the socket after X (Y) now (socket inode
    # numbers are 32-bit: get_next_ino())
    yino = L("yino")
    peek64(p, "r1", "r1", b.offsetof("hlist_node", "next"))
    p.emit(asm.mov("r2", 0), asm.jmp("jeq", "r1", 0, yino))
    p.rdonly_cast(R, "r1", "sock", -off_node)
    sk_ino(p, R, "r2")
    p.emit(asm.label(yino), asm.mov("r2", asm.reg("r2"), alu32=True))
    load(p, "r1", slots["ino"])
    p.emit(asm.alu("lsh", "r1", 32), asm.alu("or", "r1", asm.reg("r2")),
           asm.stx("dw", S, "r1", S_INO), asm.ja(loop),
           asm.label(done))
    return p.build()


def iterator_ref(p: IterProgram, slots: dict) -> None:
    """slots["ref"] -= 1 when the iterator itself holds a reference on the socket being
    printed (slots["node"]): bpf_iter_udp_batch() sock_hold()s every socket of the hash2
    slot it batches and bpf_iter_udp_seq_next() drops them one by one, so while the program
    runs batch[cur_sk..end_sk) are held (net/ipv4/udp.c, struct bpf_udp_iter_state); /proc
    holds none. A kernel without that struct (no batching) holds none either."""
    b = p.btf
    try:
        st = lambda f: b.offsetof("bpf_udp_iter_state", f)  # noqa: E731
        cur, end, batch = st("cur_sk"), st("end_sk"), st("batch")
        item = b.sizeof(b.find("bpf_udp_iter_batch_item"))
    except Exception:
        return
    loop, out = p.label_name("held"), p.label_name("held_out")
    p.emit(asm.ldx("dw", "r1", p.meta, b.offsetof("bpf_iter_meta", "seq")),
           asm.ldx("dw", "r1", "r1", b.offsetof("seq_file", "private")))
    p.rdonly_cast("r1", "r1", "bpf_udp_iter_state")
    p.emit(asm.ldx("w", "r2", "r1", cur), asm.ldx("w", "r3", "r1", end))
    store(p, slots["bi"], "r2")
    store(p, slots["bend"], "r3")
    peek64(p, "r2", "r1", batch)
    store(p, slots["bbatch"], "r2")
    p.emit(asm.label(loop), asm.may_goto(out))
    load(p, "r1", slots["bi"])
    load(p, "r2", slots["bend"])
    p.emit(asm.jmp("jge", "r1", asm.reg("r2"), out), asm.mov("r3", asm.reg("r1")),
           asm.alu("add", "r1", 1))
    store(p, slots["bi"], "r1")
    p.emit(asm.alu("mul", "r3", item))
    load(p, "r2", slots["bbatch"])
    p.emit(asm.alu("add", "r3", asm.reg("r2")))
    peek64(p, "r3", "r3")
    load(p, "r4", slots["node"])
    p.emit(asm.alu("sub", "r4", b.offsetof("sock", "__sk_common.skc_node")),
           asm.jmp("jne", "r3", asm.reg("r4"), loop))
    load(p, "r1", slots["ref"])
    p.emit(asm.alu("sub", "r1", 1))
    store(p, slots["ref"], "r1")
    p.emit(asm.label(out))


def emit_line(p: IterProgram, sk: str, v6: bool, slots: dict, src_buf: int, dst_buf: int) -> None:
    """Print the /proc line of the socket in sk (a typed, callee-saved udp_sock register;
    clobbered)."""
    b = p.btf
    sock = lambda path: b.offsetof("udp_sock", path)  # noqa: E731
    c = "inet.sk.__sk_common."

    def address(buf: int, field: str, port: int) -> None:
        """buf = the kernel's "%08X" words of the address, ":%04X" of the port, NUL."""
        words = 4 if v6 else 1
        for i in range(words):
            p.emit(asm.ldx("w", "r2", sk, sock(c + field) + 4 * i))
            hex8(p, "r2", "r1", "r3", "r4")
            p.emit(asm.stx("dw", "r10", "r1", buf + 8 * i))
        port_suffix(p, sk, port, "r1")
        p.emit(asm.stx("dw", "r10", "r1", buf + 8 * words))

    if v6:
        address(src_buf, "skc_v6_rcv_saddr", sock("inet.inet_sport"))
        address(dst_buf, "skc_v6_daddr", sock(c + "skc_dport"))
    else:
        address(src_buf, "skc_rcv_saddr", sock("inet.inet_sport"))
        address(dst_buf, "skc_daddr", sock(c + "skc_dport"))

    p.emit(asm.ldx("b", "r1", sk, sock(c + "skc_state")))
    store(p, slots["st"], "r1")
    p.emit(asm.ldx("w", "r1", sk, sock("inet.sk.sk_wmem_alloc.refs.counter")),
           asm.alu("sub", "r1", 1))                                  # sk_wmem_alloc_get
    store(p, slots["tx"], "r1")
    p.emit(asm.ldx("w", "r1", sk, sock("inet.sk.sk_backlog.rmem_alloc.counter")),
           asm.ldx("w", "r2", sk, sock("forward_deficit")),
           asm.alu("sub", "r1", asm.reg("r2")))                      # udp_rqueue_get
    store(p, slots["rx"], "r1")
    p.emit(asm.ldx("w", "r1", sk, sock("inet.sk.sk_uid.val")))
    store(p, slots["uid"], "r1")
    p.emit(asm.ldxs("w", "r1", sk, sock(c + "skc_refcnt.refs.counter")))
    store(p, slots["ref"], "r1")
    iterator_ref(p, slots)
    # sk_drops_read()
    p.emit(asm.ldx("w", "r1", sk, sock("inet.sk.sk_drops.counter")))
    store(p, slots["drops"], "r1")
    try:
        ndc_off = sock("inet.sk.sk_drop_counters")
        counters = [m.name for m in b.resolve(b.find("numa_drop_counters").id).members]
    except Exception:
        ndc_off = None
    if ndc_off is not None:
        nodc = p.label_name("nodc")
        peek64(p, "r1", sk, ndc_off)
        p.emit(asm.jmp("jeq", "r1", 0, nodc))
        p.rdonly_cast("r1", "r1", "numa_drop_counters")
        p.emit(asm.mov("r3", 0))
        for name in counters:
            p.emit(asm.ldx("w", "r2", "r1", b.offsetof("numa_drop_counters", f"{name}.counter")),
                   asm.alu("add", "r3", asm.reg("r2")))
        p.emit(asm.mov("r3", asm.reg("r3"), alu32=True))
        store(p, slots["drops"], "r3")
        p.emit(asm.label(nodc))
    # sock_i_ino (also what the cursor checks a remembered socket against)
    sk_ino(p, sk, "r1")
    store(p, slots["ino"], "r1")
    p.emit(asm.mov("r1", asm.reg(sk)))
    store(p, slots["sk"], "r1")

    def ptr(buf: int) -> Stack:
        slot = p.stack(8)
        p.emit(asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", buf))
        store(p, slot, "r1")
        return Stack(slot)

    args = [Stack(slots["b"]), ptr(src_buf), ptr(dst_buf), Stack(slots["st"]),
            Stack(slots["tx"]), Stack(slots["rx"]), Stack(slots["uid"]), Stack(slots["ino"]),
            Stack(slots["ref"]), Stack(slots["sk"]), Stack(slots["drops"])]
    if v6:
        p.seq_printf(FMT6, *args)
        return
    # the padding seq_pad adds: 127 - the line's length
    p.emit(asm.mov(sk, FIXED4))                 # sk is not read any more
    for name, signed, width in (("uid", False, 5), ("ino", False, 1), ("ref", True, 1),
                                ("drops", False, 1)):
        load(p, "r2", slots[name])
        if name == "drops":
            p.emit(asm.mov("r2", asm.reg("r2"), alu32=True))
        digits(p, "r3", "r2", "r4", signed=signed, min_width=width)
        p.emit(asm.alu("add", sk, asm.reg("r3")))
    p.seq_printf(FMT4, *args, p.pad(WIDTH4, sk))


def build_udp(btf) -> ProgramSpec:
    return build_family(btf, AF_INET)


def build_udp6(btf) -> ProgramSpec:
    return build_family(btf, AF_INET6)


FILES = [
    IterSpec("net/udp", "udp", build_udp, netns=True, pointers=True,
             doc="/proc/net/udp (net/ipv4/udp.c udp4_seq_show, udp4_format_sock)"),
    IterSpec("net/udp6", "udp", build_udp6, netns=True, pointers=True,
             doc="/proc/net/udp6 (net/ipv6/udp.c udp6_seq_show, "
                 "net/ipv6/datagram.c __ip6_dgram_sock_seq_show)"),
]
