"""`python -m itsm_exporter` runs the CLI."""

import sys

from itsm_exporter.cli import main

sys.exit(main())
