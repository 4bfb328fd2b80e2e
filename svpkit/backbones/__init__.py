"""Pretrained backbones: frozen feature extractors with their own preprocessing and verified weights.

``base`` holds what a backbone is (:class:`~svpkit.backbones.base.BackboneSpec`: modality, width,
preprocessing, weights with source, license and sha256) and how a run's ``--backbone`` and
``--backbone-options`` resolve to checked weights; ``embed`` turns a data set into its embedded
pool through the embedding store (svpkit.data.embeddings). Backbones are registered through the
``register_backbones`` hook (docs/pretrained.md).
"""
