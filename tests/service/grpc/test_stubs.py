"""The committed gRPC stubs are what grpcio-tools generates from our .proto files today, and our
messages are wire-compatible with the ones tritonclient.grpc sends: same names, field numbers,
types and cardinality, field by field."""

from __future__ import annotations

import subprocess
import sys

import pytest
from google.protobuf.descriptor import Descriptor
from tritonclient.grpc import service_pb2 as triton

from service.grpc.protos import inference_pb2 as ours
from tests.service.helpers import REPO_ROOT


def test_committed_stubs_are_current() -> None:
    pytest.importorskip("grpc_tools")
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / ".ci" / "grpc_stubs.py")],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr


def _fields(message: Descriptor) -> dict[str, tuple[int, int, bool, str]]:
    return {
        f.name: (
            f.number,
            f.type,
            f.is_repeated,
            f.message_type.full_name if f.message_type else "",
        )
        for f in message.fields
    }


# In the Open Inference Protocol's .proto but not in Triton's: tritonclient skips it as an
# unknown field.
SPEC_ONLY = {("inference.ModelMetadataResponse", "properties")}


def _same_shape(mine: Descriptor, theirs: Descriptor) -> None:
    """Every field of ours exists in theirs with the same number, type and cardinality (theirs
    may have more: Triton's optional extras, such as response_stats, are not sent by us)."""
    ours_fields, their_fields = _fields(mine), _fields(theirs)
    for name, spec in ours_fields.items():
        if (mine.full_name, name) in SPEC_ONLY:
            assert name not in their_fields
            continue
        assert their_fields.get(name) == spec, (mine.full_name, name, spec, their_fields.get(name))
    for nested in mine.nested_types:
        if nested.name != "PropertiesEntry":  # the map entry of SPEC_ONLY's properties
            _same_shape(nested, theirs.nested_types_by_name[nested.name])


def test_messages_match_tritonclient_field_by_field() -> None:
    messages = ours.DESCRIPTOR.message_types_by_name
    assert len(messages) == 28  # the check is not vacuous: every message we declare
    for name, mine in messages.items():
        _same_shape(mine, triton.DESCRIPTOR.message_types_by_name[name])


def test_methods_match_tritonclient() -> None:
    (service,) = ours.DESCRIPTOR.services_by_name.values()
    theirs = triton.DESCRIPTOR.services_by_name[service.name]
    assert service.full_name == "inference.GRPCInferenceService"
    for method in service.methods:
        other = theirs.methods_by_name[method.name]
        assert method.input_type.full_name == other.input_type.full_name
        assert method.output_type.full_name == other.output_type.full_name


def test_our_messages_live_beside_tritonclients() -> None:
    """Both sets of `inference.*` messages load in one process (ours are in a pool of their
    own), and a message of one parses as the other."""
    request = triton.ModelInferRequest(model_name="m", raw_input_contents=[b"\x00" * 4])
    request.inputs.add(name="x", datatype="FP32", shape=[1, 1])
    mine = ours.ModelInferRequest.FromString(request.SerializeToString())
    assert mine.inputs[0].name == "x"
    assert mine.raw_input_contents == [b"\x00" * 4]
    assert ours.ModelInferRequest.DESCRIPTOR.file.pool is not triton.DESCRIPTOR.pool
