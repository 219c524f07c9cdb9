"""What the tests and the benchmarks share: the server launcher, a real S3 server (SeaweedFS)
and model builders. It imports neither `tests` nor the rest of `benchmarks`; both import it."""
