"""`python -m trainer ...` is the `trainer` command (`python -m trainer sweep ...` the sweep)."""

import sys

from trainer.cli import main

sys.exit(main())
