"""Labeling projects: real labeling rounds with a proxy picking the batches (docs/labeling.md).

- :mod:`~svpkit.labeling.project`: a project as its run holds it (the newest state), its
  training set;
- :mod:`~svpkit.labeling.files`: the CSV files (the batch to label, the answers, the export);
- :mod:`~svpkit.labeling.session`: writing a query's round and an import's answers to the run,
  crash-safe (the state is written last), and checking answers against the batch.

One round's selection itself is :mod:`svpkit.loops.labeling`.
"""
