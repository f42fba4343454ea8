"""Allow ``python -m vm_operator``."""

from vm_operator.cli import main

raise SystemExit(main())
