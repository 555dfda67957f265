"""The `python -m ml` command line: one module per subcommand, helpers in `common`.

The library never imports this package (tests/test_foundation.py checks it).
"""
