"""Where the commands print: results on stdout, problems (warnings, failed files, errors) on stderr."""

from rich.console import Console

console = Console()
errors = Console(stderr=True)
