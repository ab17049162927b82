"""``python -m minildm ...``: see ``minildm.cli``."""

from minildm.cli import main

raise SystemExit(main())
