"""``python -m vm_operator.simulator ARGS``: the Tart simulator."""

import sys

from .cli import main

sys.exit(main())
