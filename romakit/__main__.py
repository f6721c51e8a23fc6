"""``python -m romakit ...`` is the ``romakit`` command."""

from romakit.cli import main

raise SystemExit(main())
