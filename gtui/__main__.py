"""``python -m gtui``."""

import sys

from gtui.cli import main

sys.exit(main())
