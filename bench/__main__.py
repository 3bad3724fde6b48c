"""`python -m bench` is the CLI (`amodal-bench`)."""

import sys

from bench.cli import main

sys.exit(main())
