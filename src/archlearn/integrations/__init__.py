"""Where PyTorch users train and deploy: each integration needs its own extra, imported lazily.

- ``archlearn.integrations.lightning``: the ``ArchLearning`` callback (``archlearn[lightning]``).
- ``archlearn.integrations.hf``: a Hugging Face ``Trainer`` callback and loss (``archlearn[hf]``).
- ``archlearn.integrations.onnx``: ``export_onnx``, also ``al.export_onnx`` (``archlearn[onnx]``).

Importing this package imports none of them.
"""
