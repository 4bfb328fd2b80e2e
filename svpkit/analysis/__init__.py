"""Analysis of finished runs: comparison, statistics, proxy suggestions."""
