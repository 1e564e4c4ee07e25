"""The iterfs catalog: one module per virtual file or family, each declaring FILES."""
