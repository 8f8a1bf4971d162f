"""A classifier's labels as an ONNX tensor, when ONNX can hold them exactly.

``classes_`` comes out of the graph with the dtype ``predict`` returns: integers (int64 for
ordinary integer labels, other widths kept), unsigned integers, floats, bools, and strings
(ONNX's string tensor; onnxruntime returns them as a NumPy object array of ``str``). An object
array is read by its contents: all strings, all ints, all floats or all bools. Anything else
(labels mixing types, say ``[1, "a"]``) has no ONNX tensor type: the graph then returns the class
index and the labels are written beside the model as JSON (:func:`rnnkit.models.persist.encode_labels`).
"""

from __future__ import annotations

import numbers

import numpy as np

from rnnkit.onnx.deps import require_onnx

INT64 = np.iinfo(np.int64)


def label_array(classes: np.ndarray) -> np.ndarray | None:
    """``classes`` as an array ONNX can hold with the same values, or None if there is none."""
    if classes.dtype.kind in "biuf" and classes.dtype.itemsize <= 8:
        return classes
    if classes.dtype.kind == "U":
        return classes.astype(object)
    if classes.dtype != object:
        return None
    values = classes.tolist()
    if all(isinstance(v, str) for v in values):
        return np.array(values, dtype=object)
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return np.array(values, dtype=bool)
    if all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) for v in values) \
            and INT64.min <= min(values) and max(values) <= INT64.max:
        return np.array(values, dtype=np.int64)
    if all(isinstance(v, float) for v in values):
        return np.array(values, dtype=np.float64)
    return None


def tensor_type(labels: np.ndarray) -> int:
    """The ONNX element type of an array returned by :func:`label_array`."""
    onnx = require_onnx()
    if labels.dtype == object:
        return onnx.TensorProto.STRING
    return onnx.helper.np_dtype_to_tensor_dtype(labels.dtype)
