"""``python -m phantom.cli``: the ``phantom`` command."""

import sys

from phantom.cli import main

sys.exit(main())
