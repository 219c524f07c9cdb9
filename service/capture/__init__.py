"""Traffic capture: a sample of the served requests and their answers, written as data shards.

`CaptureWriter` (writer.py) holds the server-wide bounds (rate, queue bytes, total bytes) and the
one thread that writes; `VersionCapture` (version.py) is what a served version calls when an
answer is ready; `shards.py` turns queued requests into a shard. The format is
`model_store/shards.py`'s, the one `python -m training retrain --data` reads.
"""

from service.capture.version import VersionCapture, capturable_input
from service.capture.writer import CaptureWriter

__all__ = ["CaptureWriter", "VersionCapture", "capturable_input"]
