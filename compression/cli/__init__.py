"""The command line: `main.py` builds the parser from one module per command group."""
