"""`python -m bpviz` is the `bpviz` command."""

import sys

from bpviz.cli import main

sys.exit(main())
