"""Reports: the pages and run folders of runs, sweeps, comparisons and paper runs.

A layer above what it reports on (experiment, sweep, compare, live): it imports them,
they never import it, and `evaluation/` below keeps the pure scoring (metrics, stats,
tables). These modules load matplotlib; import them only to write a report.
"""
