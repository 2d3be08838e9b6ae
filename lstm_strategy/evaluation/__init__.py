"""Pure scoring: forecast and strategy metrics, the statistics of a sweep (DSR, PBO) and the
tearsheet tables. No plotting here: the reports that show these live in `reports/`.
"""
