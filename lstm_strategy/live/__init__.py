"""Live and paper trading: the backtest's strategy, features and models on a live feed.

`LiveForecaster` (features as bars arrive, the walk-forward run live) plugs into
`LSTMStrategy(online=...)` on any backtrader feed; `paper()` is `lstm-backtest paper`:
a replayed or tailed file on backtrader's broker, journaled so a killed run resumes.
"""

from .feeds import BarFeed, ReplaySource, TailSource
from .forecaster import LiveForecaster
from .journal import Journal, JournalMismatch, RunnerBusy
from .runner import PaperResult, paper

__all__ = ["BarFeed", "Journal", "JournalMismatch", "LiveForecaster", "PaperResult",
           "ReplaySource", "RunnerBusy", "TailSource", "paper"]
