"""Open Inference Protocol (V2) wire format, with Triton's binary-tensor and classification
extensions."""

from service.protocol.decode import InferRequest, RequestedOutput, decode_request
from service.protocol.encode import encode_response

__all__ = ["InferRequest", "RequestedOutput", "decode_request", "encode_response"]
