"""logdistill runtime: the contract shared by the edge service and the training pipeline.

Everything here runs without torch: parsing, masking, taxonomy, model artifacts,
ONNX Runtime inference and the template cache.
"""

__version__ = "0.1.0"
