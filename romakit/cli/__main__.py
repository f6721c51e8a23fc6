"""``python -m romakit.cli ...`` is the ``romakit`` command too."""

from romakit.cli import main

raise SystemExit(main())
