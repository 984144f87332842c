"""``python -m pathos``: the ``pathos`` command (see :mod:`pathos._cli`)."""

from pathos._cli import main

raise SystemExit(main())
