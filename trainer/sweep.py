"""`python -m trainer.sweep ARGS` is `trainer sweep ARGS`.

Only a script: trainer.sweep is the API function (trainer/api.py) and the code is in
trainer/sweeping.py. Importing this file would replace that function on the package with this
module, so an import is refused.
"""

if __name__ != "__main__":
    raise ImportError("trainer.sweep is a function (the API), not a module: the code is in "
                      "trainer.sweeping; run `python -m trainer sweep` or this file as a script")

import sys

from trainer.cli import main

sys.exit(main(["sweep", *sys.argv[1:]]))
