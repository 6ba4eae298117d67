"""``python -m enumer``: the same as the ``enumer`` command."""

import sys

from enumer.cli import main

sys.exit(main())
