"""Baselines every run is measured against, on the same data, dates and costs."""

from __future__ import annotations

import backtrader as bt

from .strategies import RecordingStrategy


class BuyAndHold(RecordingStrategy):
    """Buy the whole book (`fraction` of equity, split equally across datas) on the first
    tradable bar and hold; purchases leave room for commission and slippage."""

    params = (("fraction", 1.0), ("trade_start", None))

    def __init__(self) -> None:
        self._start_num = self.trade_start_num()
        self._bought = False

    def next(self) -> None:
        if self._bought or self.datetime[0] < self._start_num:
            return
        self.order_targets([(data, self.p.fraction / len(self.datas)) for data in self.datas])
        self._bought = True

    def notify_order(self, order: bt.Order) -> None:
        super().notify_order(order)
        if order.status in (order.Margin, order.Rejected):
            self._bought = False  # not enough cash at the fill price: try again next bar


class SmaCross(RecordingStrategy):
    """Long while the fast SMA is above the slow one (short below, if allowed)."""

    params = (("fast", 20), ("slow", 50), ("fraction", 0.95), ("allow_short", False),
              ("trade_start", None))

    def __init__(self) -> None:
        if not 0 < self.p.fast < self.p.slow:
            raise ValueError(f"SmaCross needs 0 < fast < slow, got fast={self.p.fast}, "
                             f"slow={self.p.slow}.")
        self._start_num = self.trade_start_num()
        self._fast = {d: bt.indicators.SMA(d.close, period=self.p.fast) for d in self.datas}
        self._slow = {d: bt.indicators.SMA(d.close, period=self.p.slow) for d in self.datas}
        self._side = dict.fromkeys(self.datas, 0)

    def next(self) -> None:
        if self.datetime[0] < self._start_num:
            return
        weight = self.p.fraction / len(self.datas)
        orders = []
        for data in self.datas:
            above = self._fast[data][0] > self._slow[data][0]
            side = 1 if above else (-1 if self.p.allow_short else 0)
            if side != self._side[data]:
                orders.append((data, side * weight))
                self._side[data] = side
        if orders:
            self.order_targets(orders)

    def notify_order(self, order: bt.Order) -> None:
        super().notify_order(order)
        if order.status in (order.Margin, order.Rejected):
            # not enough cash at the fill price: fall back to the position held, retry next bar
            size = self.getposition(order.data).size
            self._side[order.data] = (size > 0) - (size < 0)
