"""SVP loops: pure algorithms that report through a :class:`~svpkit.loops.tracker.Tracker`."""
