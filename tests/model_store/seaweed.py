"""The SeaweedFS S3 server the tests start: it lives in the harness that tests and benchmarks
share (`benchmarks/harness/seaweed.py`); this module keeps the tests' import path."""

from benchmarks.harness.seaweed import ACCESS_KEY, REGION, SECRET_KEY, SeaweedS3, weed_binary

__all__ = ["ACCESS_KEY", "REGION", "SECRET_KEY", "SeaweedS3", "weed_binary"]
