"""SVP loops: pure algorithms that report through a :class:`~svpkit.protocols.Tracker`."""
