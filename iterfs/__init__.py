"""iterfs: a /proc replacement whose files are computed by BPF iterators assembled in pure Python."""

__version__ = "0.1.0"
