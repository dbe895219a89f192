"""`python -m trainer.evaluate ARGS` is `trainer evaluate ARGS`.

Only a script: trainer.evaluate is the API function (trainer/api.py) and the code is in
trainer/evaluation.py. Importing this file would replace that function on the package with this
module, so an import is refused.
"""

if __name__ != "__main__":
    raise ImportError("trainer.evaluate is a function (the API), not a module: the code is in "
                      "trainer.evaluation; run `python -m trainer evaluate` or this file as a script")

import sys

from trainer.cli import main

sys.exit(main(["evaluate", *sys.argv[1:]]))
