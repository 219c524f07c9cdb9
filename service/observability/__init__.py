"""What the server tells about its requests beyond metrics: OpenTelemetry traces (tracing.py,
configured by the SDK's own OTEL_* variables) and the access log (access_log.py,
INDUCTIVE_ACCESS_LOG). `observer.py` ties both to the inference front end. Both are off by
default, and then a request pays one `is None` test at its start and one at its end.
"""
