"""net/netlink — /proc/net/netlink byte for byte, from the netlink iterator (Linux 5.8+).

The kernel's file (net/netlink/af_netlink.c, netlink_native_seq_show, Linux 6.18):

    seq_puts(seq, "sk               Eth Pid        Groups   "
                  "Rmem     Wmem     Dump  Locks    Drops    Inode\\n");
    seq_printf(seq, "%pK %-3d %-10u %08x %-8d %-8d %-5d %-8d %-8u %-8lu\\n",
               s, s->sk_protocol, nlk->portid,
               nlk->groups ? (u32)nlk->groups[0] : 0,
               sk_rmem_alloc_get(s),            // atomic_read(&sk->sk_rmem_alloc)
               sk_wmem_alloc_get(s),            // refcount_read(&sk->sk_wmem_alloc) - 1
               READ_ONCE(nlk->cb_running),
               refcount_read(&s->sk_refcnt),
               sk_drops_read(s),
               sock_i_ino(s));

Each record here is ONE bpf_seq_printf with that very format (10 arguments):

- `%pK` is the struct sock (a netlink_sock starts with it), formatted with the reader's
  credentials like /proc's.
- sk_rmem_alloc is `sk_backlog.rmem_alloc`; Wmem is sk_wmem_alloc - 1 (so an idle socket
  prints 0, as the kernel's sk_wmem_alloc_get()).
- Groups: the first 32 bits of nlk->groups[0]; nlk->groups is an `unsigned long *` BTF
  cannot type as a struct, so the word is read with bpf_probe_read_kernel.
- Drops is sk_drops_read() (include/net/sock.h, 6.18): the sum of the per-NUMA counters
  (struct numa_drop_counters: drops0 + drops1) when sk->sk_drop_counters is set (UDP and
  raw sockets), else sk->sk_drops. On kernels without sk_drop_counters: sk->sk_drops.
- Inode is sock_i_ino(): READ_ONCE(sk->sk_ino) on 6.17+, else SOCK_INODE(sk_socket)->i_ino.
- The netlink iterator takes no reference on the sockets it shows (it walks each protocol's
  rhashtable like /proc does), so Locks is sk_refcnt as is.

Header: before the first socket (seq_num == 0), or by the final call when the walk was
empty (seq_num == (u64)-1); see IterProgram.header. Order: both walks go protocol by
protocol (nl_table[0..MAX_LINKS)), each through rhashtable_walk_next, so the lines come in
/proc's order.
"""

from __future__ import annotations

from iterfs import asm
from iterfs.btf import Kind
from iterfs.catalog import IterSpec
from iterfs.dsl.program import Field, IterProgram, ProgramSpec, Stack

from .net_unix import has_member, inode_arg

HEADER = ("sk               Eth Pid        Groups   "
          "Rmem     Wmem     Dump  Locks    Drops    Inode\n")
FORMAT = "%pK %-3d %-10u %08x %-8d %-8d %-5d %-8d %-8u %-8lu\n"


def drop_counter_fields(btf) -> list[str]:
    """The atomic_t members of struct numa_drop_counters (drops0, drops1 on 6.18)."""
    t = btf.resolve(btf.find("numa_drop_counters"))
    return [m.name for m in t.members
            if btf.resolve(m.type).kind == Kind.STRUCT
            and getattr(btf.resolve(m.type), "name", "") in ("", "atomic_t")
            and m.name.startswith("drops")]


def emit_drops(p: IterProgram, n: str, dst: int) -> None:
    """*(u64 *)(r10 + dst) = sk_drops_read(sk). Clobbers r1-r3."""
    done = p.label_name("drops_done")
    p.load("r1", Field(n, "sk.sk_drops.counter"))
    p.emit(asm.stx("dw", "r10", "r1", dst))
    if not has_member(p.btf, "sock", "sk_drop_counters"):
        return
    fields = drop_counter_fields(p.btf)
    if not fields:  # a layout this module does not know: refuse rather than print 0
        raise ValueError("struct numa_drop_counters has no drops* atomic_t members")
    p.ptr(Field(n, "sk.sk_drop_counters"), dst="r2")
    p.emit(asm.jmp("jeq", "r2", 0, done), asm.mov("r3", 0))
    for f in fields:
        p.load("r1", Field("r2", f + ".counter"))
        p.emit(asm.alu("add", "r3", asm.Reg.R1))
    p.emit(asm.stx("dw", "r10", "r3", dst), asm.label(done))


def build(btf) -> ProgramSpec:
    p = IterProgram("netlink", btf=btf, name="net_netlink")
    n = p.ctx_ptr("sk")
    p.header(HEADER, n)
    p.exit_if_null(n)

    groups, wmem, drops = (p.stack(8) for _ in range(3))
    # Groups: (u32)nlk->groups[0], or 0
    p.emit(asm.st("dw", "r10", groups, 0))
    nogroups = p.label_name("nogroups")
    p.load("r3", Field(n, "groups"))
    p.emit(asm.jmp("jeq", "r3", 0, nogroups))
    p.probe_read(groups, 8, "r3")
    p.emit(asm.label(nogroups))
    # Wmem: sk_wmem_alloc - 1
    p.load("r1", Field(n, "sk.sk_wmem_alloc.refs.counter"))
    p.emit(asm.alu("sub", "r1", 1), asm.stx("dw", "r10", "r1", wmem))
    emit_drops(p, n, drops)

    p.seq_printf(FORMAT, n, Field(n, "sk.sk_protocol"), Field(n, "portid"), Stack(groups),
                 Field(n, "sk.sk_backlog.rmem_alloc.counter"), Stack(wmem),
                 Field(n, "cb_running"), Field(n, "sk.__sk_common.skc_refcnt.refs.counter"),
                 Stack(drops), inode_arg(p, n, "sk."))
    return p.build()


FILES = [IterSpec("net/netlink", "netlink", build, netns=True, pointers=True,
                  doc="/proc/net/netlink (net/netlink/af_netlink.c netlink_native_seq_show)")]
