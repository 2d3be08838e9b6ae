"""Forecast and strategy metrics, and the run folder's report (charts, report.html).

`metrics` is light; `report` imports matplotlib and is loaded only when a report is written.
"""
