"""Inductive's offline half: models, data, training, ONNX export and validation, publishing.

Run `python -m training --help`. Publishing goes through `model_store` only.
"""
