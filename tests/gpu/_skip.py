"""skip() that works with pytest and with tests/gpu/runner.py."""
try:
    import pytest

    def skip(msg):
        pytest.skip(msg)
except ImportError:  # plain runner
    class Skipped(Exception):
        pass

    def skip(msg):
        raise Skipped(msg)
