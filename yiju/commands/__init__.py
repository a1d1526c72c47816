"""CLI command groups. Each module has `register(subparsers)`; `yiju.cli` lists the modules."""
