"""`python -m dfer` (and `torchrun -m dfer`) run the CLI."""

from dfer.cli import main

main()
