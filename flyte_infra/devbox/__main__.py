"""`python -m flyte_infra.devbox`: see `flyte_infra.devbox.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
