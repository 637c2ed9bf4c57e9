"""Entry point for `pulumi up`: see program.py."""

import program

program.main()
