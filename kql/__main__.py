"""``python -m kql`` is the ``kql`` command."""

from kql.cli.app import main

raise SystemExit(main())
