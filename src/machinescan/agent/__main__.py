"""`python -m machinescan.agent`: runs the agent's command line."""

import sys

from .cli import main

sys.exit(main())
