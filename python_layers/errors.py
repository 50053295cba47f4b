"""Our layers say their own error: the message and where, on stderr, before raising.

Caffe's ``caffe`` tool without this project's traceback patch (Debian's and Ubuntu's
packaged ``caffe``) catches a Python layer's exception only as
``boost::python::error_already_set`` and aborts without printing it. Each layer class is
decorated with :func:`reports_errors`, so that the user sees, whatever runs the net::

    SoftmaxLossLayer.setup: ValueError: SoftmaxLossLayer: unknown param_str key(s) ...
      at python_layers/params.py:123 in parse_params
"""

from __future__ import annotations

import functools
import sys
import traceback
from typing import Callable, TypeVar

METHODS = ("setup", "reshape", "forward", "backward")
Layer = TypeVar("Layer", bound=type)


def describe(layer: str, method: str, error: BaseException) -> str:
    """``Layer.method: Type: message`` and the line that raised it."""
    text = f"{layer}.{method}: {type(error).__name__}: {error}"
    frames = traceback.extract_tb(error.__traceback__)
    if frames:
        last = frames[-1]
        text += f"\n  at {last.filename}:{last.lineno} in {last.name}"
    return text


def _reporting(layer: str, name: str, method: Callable) -> Callable:
    @functools.wraps(method)
    def call(self, *args):
        try:
            return method(self, *args)
        except Exception as error:
            print(describe(layer, name, error), file=sys.stderr, flush=True)
            raise

    return call


def reports_errors(cls: Layer) -> Layer:
    """Class decorator: the layer's setup/reshape/forward/backward print an exception's
    message and place to stderr, then raise it unchanged."""
    for name in METHODS:
        if name in cls.__dict__:
            setattr(cls, name, _reporting(cls.__name__, name, cls.__dict__[name]))
    return cls
