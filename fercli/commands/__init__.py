"""One module per ``fer`` subcommand: take the checked options, call the library, print results and write files.

The library below (fercli/*.py) prints nothing and knows no command line; cli.py is the thin Typer layer above.
"""
