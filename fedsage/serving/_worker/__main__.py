"""``<runtime python> .../serving/_worker ARGS``: run fedsage's model worker.

Python puts this folder first on ``sys.path``; the worker's modules live in the
``fedsage_worker`` package inside it, so nothing here shadows a standard-library module
or one of the user's.
"""

import sys

from fedsage_worker.entry import main

if __name__ == "__main__":
    sys.exit(main())
