"""``python -m satkit ...`` (also what ``torchrun -m satkit train ...`` runs)."""

import sys

from satkit.cli import main

sys.exit(main())
