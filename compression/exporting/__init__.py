"""Export to ONNX and the steps on ONNX folders (export, quantize, float-outputs).

Named `exporting`, not `onnx`: a subpackage called `onnx` would be one relative import or
one `sys.path` entry away from shadowing the `onnx` library that these modules import."""
