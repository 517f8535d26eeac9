"""``python -m kql`` is the ``kql`` command."""

from kql.cli import main

raise SystemExit(main())
