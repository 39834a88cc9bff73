"""``python -m gtui``."""

import sys

from gtui.thin import main

sys.exit(main())
