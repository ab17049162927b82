"""``python -m minildm.classroom ...``: see :mod:`minildm.classroom.cli`."""

from minildm.classroom.cli import main

raise SystemExit(main())
