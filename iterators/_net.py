"""Program pieces shared by the /proc/net files."""

from iterfs import asm
from iterfs.dsl.program import IterProgram


def sock_inode(p: IterProgram, sock_ptr, dst: str) -> None:
    """dst = SOCK_INODE(<sock_ptr>)->i_ino, the inode /proc/net/* prints (sock_i_ino; 0
    without a socket).

    `sock_ptr` is a Field naming a `struct socket *` (e.g. Field(sk, "sk_socket")). struct
    socket is embedded in struct socket_alloc next to its inode; the verifier will not let a
    typed load go past struct socket, so i_ino is read with bpf_probe_read_kernel at the BTF
    offset of socket_alloc.vfs_inode.i_ino (a failed read of a NULL socket leaves 0). Works
    for kernel sockets too, which have no struct file."""
    slot = p.stack(8)
    off = p.btf.offsetof("socket_alloc", "vfs_inode.i_ino") - p.btf.offsetof("socket_alloc", "socket")
    p.ptr(sock_ptr, dst="r3")
    p.emit(asm.alu("add", "r3", off),
           asm.mov("r1", asm.Reg.R10), asm.alu("add", "r1", slot), asm.mov("r2", 8),
           asm.call(asm.Helper.probe_read_kernel),
           asm.ldx("dw", dst, "r10", slot))
