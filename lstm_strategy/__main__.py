"""`python -m lstm_strategy ...` is `lstm-backtest ...`."""

import sys

from .cli import main

sys.exit(main())
