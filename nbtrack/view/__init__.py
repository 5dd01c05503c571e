"""What a tracked cell shows under itself: the run's record, drawn live (``live``)."""
