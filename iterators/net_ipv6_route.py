"""net/ipv6_route — /proc/net/ipv6_route, byte for byte, from the ipv6_route iterator.

No header. One line per fib6_info, in the order of the kernel's own walk: the bpf iterator
and /proc share `ipv6_route_seq_ops` (net/ipv6/ip6_fib.c: ipv6_route_seq_start/_next walk
every fib6 table of the netns with a fib6_walker), so the lines come in /proc's order.

Kernel source followed (Linux 6.18, net/ipv6/ip6_fib.c ipv6_route_native_seq_show):

    fib6_nh = rt->nh ? nexthop_fib6_nh(rt->nh) : rt->fib6_nh;
    seq_printf(seq, "%pi6 %02x ", &rt->fib6_dst.addr, rt->fib6_dst.plen);
    seq_printf(seq, "%pi6 %02x ", &rt->fib6_src.addr, rt->fib6_src.plen);  // SUBTREES
    //   without CONFIG_IPV6_SUBTREES: seq_puts("00000000000000000000000000000000 00 ")
    if (fib6_nh->fib_nh_gw_family) {
            flags |= RTF_GATEWAY;
            seq_printf(seq, "%pi6", &fib6_nh->fib_nh_gw6);
    } else
            seq_puts(seq, "00000000000000000000000000000000");
    dev = fib6_nh->fib_nh_dev;
    seq_printf(seq, " %08x %08x %08x %08x %8s\\n",
               rt->fib6_metric, refcount_read(&rt->fib6_ref), 0, flags,
               dev ? dev->name : "");

Here it is ONE bpf_seq_printf per route (9 arguments):

    "%pi6 %02x %pi6 %02x %pi6 %08x %08x 00000000 %08x %8s\\n"

with the gateway argument pointing at 16 zero bytes in rodata when there is no gateway
(%pi6 of zeros is the kernel's literal "000…0"), and the name at "" when there is no
device. The src columns are fib6_src when the running kernel's BTF has that member
(CONFIG_IPV6_SUBTREES), else the literal zeros.

nexthop_fib6_nh() (include/net/nexthop.h): for a route using a nexthop object (rt->nh) the
next hop is nh->nh_info->fib6_nh, for a group that of its first member
(nexthop_mpath_select(nh_grp, 0), NULL when the group is empty), NULL when that nexthop is
not IPv6. A NULL fib6_nh prints as no gateway and device "" (the kernel's later NULL check
in ipv6_route_native_seq_show; unpatched kernels would oops there instead). The fib6_nh in
the flexible array rt->fib6_nh[] and the ones behind nexthop objects are read through
bpf_rdonly_cast (untrusted BTF pointers: plain, fault-safe loads; the verifier inlines the
cast as a move). Every offset comes from BTF.
"""

from iterfs import asm
from iterfs.catalog import IterSpec
from iterfs.dsl.program import Addr, Field, IterProgram, ProgramSpec, Stack

# include/uapi/linux/route.h
RTF_GATEWAY = 0x0002
AF_INET6 = 10
ZERO_ADDR = b"\0" * 16
FMT = "%pi6 %02x {src}%pi6 %08x %08x 00000000 %08x %8s\n"
NO_SRC = "00000000000000000000000000000000 00 "




def has_member(btf, struct: str, member: str) -> bool:
    try:
        btf.offsetof(struct, member)
        return True
    except Exception:
        return False


def fib6_nh(p: IterProgram, rt: str, dst: str, none: str) -> None:
    """dst = the fib6_nh ipv6_route_native_seq_show prints (typed, untrusted); jumps to
    `none` where nexthop_fib6_nh() returns NULL. Clobbers r0-r5."""
    b = p.btf
    own, nh_obj, done = p.label_name("own_nh"), p.label_name("have_nh"), p.label_name("nh_done")
    p.load("r1", Field(rt, "nh"))
    p.emit(asm.jmp("jeq", "r1", 0, own))
    # a nexthop object: a group's first member (nexthop_mpath_select(nhg, 0)), its nh_info
    p.emit(asm.ldx("b", "r2", "r1", b.offsetof("nexthop", "is_group")),
           asm.jmp("jeq", "r2", 0, nh_obj),
           asm.ldx("dw", "r1", "r1", b.offsetof("nexthop", "nh_grp")),
           asm.jmp("jeq", "r1", 0, none))
    p.rdonly_cast("r1", "r1", "nh_group")
    p.emit(asm.ldx("h", "r2", "r1", b.offsetof("nh_group", "num_nh")),
           asm.jmp("jeq", "r2", 0, none),
           asm.alu("add", "r1", b.offsetof("nh_group", "nh_entries")))
    p.rdonly_cast("r1", "r1", "nh_grp_entry")
    p.emit(asm.ldx("dw", "r1", "r1", b.offsetof("nh_grp_entry", "nh")),
           asm.jmp("jeq", "r1", 0, none))
    p.rdonly_cast("r1", "r1", "nexthop")
    p.emit(asm.label(nh_obj),
           asm.ldx("dw", "r1", "r1", b.offsetof("nexthop", "nh_info")),
           asm.jmp("jeq", "r1", 0, none))
    p.rdonly_cast("r1", "r1", "nh_info")
    p.emit(asm.ldx("b", "r2", "r1", b.offsetof("nh_info", "family")),
           asm.jmp("jne", "r2", AF_INET6, none),
           asm.alu("add", "r1", b.offsetof("nh_info", "fib6_nh")))
    p.rdonly_cast(dst, "r1", "fib6_nh")
    p.emit(asm.ja(done), asm.label(own),
           asm.mov("r1", asm.reg(rt)), asm.alu("add", "r1", b.offsetof("fib6_info", "fib6_nh")))
    p.rdonly_cast(dst, "r1", "fib6_nh")
    p.emit(asm.label(done))


def build(btf) -> ProgramSpec:
    p = IterProgram("ipv6_route", btf=btf, name="ipv6_route")
    rt = p.ctx_ptr("rt")
    p.exit_if_null(rt)
    nh = p.reg()
    gw, flags, dev = (p.stack(8) for _ in range(3))
    zero, empty = p.string(ZERO_ADDR), p.string("")
    no_nh, no_gw, no_dev = p.label_name("no_nh"), p.label_name("no_gw"), p.label_name("no_dev")

    p.load("r1", Field(rt, "fib6_flags"))
    p.emit(asm.stx("dw", "r10", "r1", flags),
           p.rodata_ptr("r1", zero), asm.stx("dw", "r10", "r1", gw),
           p.rodata_ptr("r1", empty), asm.stx("dw", "r10", "r1", dev))
    fib6_nh(p, rt, nh, no_nh)
    p.load("r1", Field(nh, "nh_common.nhc_gw_family"))
    p.emit(asm.jmp("jeq", "r1", 0, no_gw),
           asm.mov("r1", asm.reg(nh)),
           asm.alu("add", "r1", btf.offsetof("fib6_nh", "nh_common.nhc_gw.ipv6")),
           asm.stx("dw", "r10", "r1", gw),
           asm.ldx("dw", "r1", "r10", flags), asm.alu("or", "r1", RTF_GATEWAY),
           asm.stx("dw", "r10", "r1", flags),
           asm.label(no_gw))
    p.load("r1", Field(nh, "nh_common.nhc_dev"))
    p.emit(asm.jmp("jeq", "r1", 0, no_dev),
           asm.alu("add", "r1", btf.offsetof("net_device", "name")),
           asm.stx("dw", "r10", "r1", dev),
           asm.label(no_dev), asm.label(no_nh))
    if has_member(btf, "fib6_info", "fib6_src"):  # CONFIG_IPV6_SUBTREES
        fmt, src = FMT.format(src="%pi6 %02x "), [Addr(rt, "fib6_src.addr"),
                                                 Field(rt, "fib6_src.plen")]
    else:
        fmt, src = FMT.format(src=NO_SRC), []
    p.seq_printf(fmt, Addr(rt, "fib6_dst.addr"), Field(rt, "fib6_dst.plen"), *src,
                 Stack(gw), Field(rt, "fib6_metric"), Field(rt, "fib6_ref.refs.counter"),
                 Stack(flags), Stack(dev))
    return p.build()


FILES = [IterSpec("net/ipv6_route", "ipv6_route", build, netns=True,
                  doc="/proc/net/ipv6_route (net/ipv6/ip6_fib.c ipv6_route_native_seq_show)")]
