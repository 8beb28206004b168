"""``python -m nn_tracing``: the ``nn-tracing`` command (:mod:`nn_tracing.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
