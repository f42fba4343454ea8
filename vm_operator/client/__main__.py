"""Allow ``python -m vm_operator.client COMMAND …``."""

import sys

from vm_operator.client.main import main

raise SystemExit(main(sys.argv[1:]))
