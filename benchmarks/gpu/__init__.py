"""The GPU benchmark: raw ONNX Runtime CUDA vs our service on the same GPU.

`python -m benchmarks.gpu` on the device machine (see run_on_device.sh); `--provider cpu
--dry-run` runs the same code end to end on a CPU machine in about a minute.
"""
