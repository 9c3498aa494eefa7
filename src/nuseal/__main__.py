"""``python -m nuseal``."""

import sys

from nuseal.cli.main import main

sys.exit(main())
