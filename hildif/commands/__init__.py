"""One module per ``hildif`` subcommand; each defines ``register(subparsers)`` and sets ``func`` on its parser."""
