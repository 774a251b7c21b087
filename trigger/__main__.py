"""`python -m trigger`: the same command line as the `trigger` script."""

from trigger.cli import main

raise SystemExit(main())
