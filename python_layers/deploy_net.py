"""A deploy net from a train net: the data layer becomes an ``Input``, losses and metrics go.

    from python_layers.deploy_net import deploy_net
    net = deploy_net("train_val.prototxt")            # a caffe_pb2.NetParameter
    open("deploy.prototxt", "w").write(str(net))

The net is taken as Caffe builds it in the TEST phase. The first layer without bottoms (the
data layer) is replaced by an ``Input`` layer named ``input`` that keeps its first top
(``data``): Caffe copies weights by *layer name*, and the ``MultiLabelImageDataLayer`` has a
parameter blob (its read position), so an ``Input`` named like the data layer fails to load
the snapshot (``Incompatible number of blobs for layer data``). The data layer's other tops
(labels, weights) and every layer that reads them (losses, metrics) are removed, as are all
other loss layers; a ``prob`` top is added (Softmax of the loss's scores; Sigmoid after a
``SigmoidCrossEntropyLoss``) unless the TEST net already has one. The ``Input``'s shape is the
data layer's input (:class:`python_layers.data.input_spec.InputSpec`: the crop, the resize, or
the list's first image), unless given. (The command, ``multilabel-deploy``, is
:mod:`python_layers.tools.deploy`.)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Union

from caffe.proto import caffe_pb2
from google.protobuf import text_format

from .data import index
from .data.decode import BadImageError, decode
from .data.input_spec import InputSpec
from .params import read_param_str

INPUT_NAME = "input"
_DATA_MODULE = "python_layers.multilabel_data"
_LOSS_MODULES = ("python_layers.softmax_loss",)
NetLike = Union[caffe_pb2.NetParameter, str, Path]


class DeployError(ValueError):
    """A train net that cannot be turned into a deploy net; the message says why and the fix."""


def read_net(net: NetLike) -> caffe_pb2.NetParameter:
    """A NetParameter from a prototxt path (or a copy of the one given)."""
    proto = caffe_pb2.NetParameter()
    if isinstance(net, caffe_pb2.NetParameter):
        proto.CopyFrom(net)
        return proto
    try:
        text_format.Parse(Path(net).read_text(encoding="utf-8"), proto)
    except text_format.ParseError as why:
        raise DeployError(f"{net}:{why}") from None
    return proto


def in_test_phase(layer: caffe_pb2.LayerParameter) -> bool:
    """Whether Caffe keeps ``layer`` in a TEST-phase net (phase rules; stages are not used)."""
    test = caffe_pb2.TEST
    if layer.include:
        return any(not rule.HasField("phase") or rule.phase == test for rule in layer.include)
    return not any(rule.HasField("phase") and rule.phase == test for rule in layer.exclude)


def data_layer(net: NetLike) -> caffe_pb2.LayerParameter:
    """The TEST net's data layer: its first layer without bottoms."""
    proto = read_net(net)
    for layer in proto.layer:
        if in_test_phase(layer) and not layer.bottom:
            return layer
    raise DeployError(f"net {proto.name!r}: no layer without bottoms (a data layer) in TEST")


def data_params(layer: caffe_pb2.LayerParameter) -> dict:
    """The param_str of a ``MultiLabelImageDataLayer`` as a dict (its TEST-phase keys)."""
    if layer.type != "Python" or layer.python_param.module != _DATA_MODULE:
        raise DeployError(
            f"layer {layer.name!r} (type {layer.type}) is not a MultiLabelImageDataLayer; "
            "give the image transform keys yourself"
        )
    # As the layer reads it (JSON or a Python dict literal): a net that trains deploys.
    return read_param_str(layer.python_param.param_str, f"layer {layer.name!r}")


def _is_loss(layer: caffe_pb2.LayerParameter) -> bool:
    if layer.type.endswith("Loss") or layer.type == "Accuracy":
        return True
    if layer.type == "Python" and layer.python_param.module in _LOSS_MODULES:
        return True
    return any(weight != 0 for weight in layer.loss_weight)


def input_spec(layer: caffe_pb2.LayerParameter) -> InputSpec:
    """The image input of a ``MultiLabelImageDataLayer``, from its param_str as the layer reads
    it (the layer's parser: its defaults and its errors)."""
    data_params(layer)  # a DeployError unless it is the data layer
    try:
        return InputSpec.parse(layer.python_param.param_str)
    except ValueError as why:
        raise DeployError(f"layer {layer.name!r}: {why}") from None


def input_shape(layer: caffe_pb2.LayerParameter) -> list[int]:
    """(N, C, H, W) that ``layer`` gives its first top, from its parameters."""
    if layer.type == "Input":
        return list(layer.input_param.shape[0].dim)
    if layer.type == "Python" and layer.python_param.module == _DATA_MODULE:
        spec = input_spec(layer)
        source = data_params(layer)["source"]
        return spec.input_shape(lambda: _first_image_size(spec, source))
    if layer.type == "HDF5Data":
        import h5py

        first = Path(layer.hdf5_data_param.source).read_text().split()[0]
        with h5py.File(first, "r") as handle:
            return [layer.hdf5_data_param.batch_size, *handle[layer.top[0]].shape[1:]]
    raise DeployError(
        f"cannot tell the input shape of layer {layer.name!r} (type {layer.type}, no crop or "
        "resize in its parameters): pass shape=(N, C, H, W) (the command: --shape N,C,H,W)"
    )


def deploy_net(
    train: NetLike,
    shape: Sequence[int] | None = None,
    input_name: str = INPUT_NAME,
    prob: str = "prob",
) -> caffe_pb2.NetParameter:
    """The deploy net of ``train`` (a prototxt path or a NetParameter): see the module doc."""
    source = read_net(train)
    layers = [layer for layer in source.layer if in_test_phase(layer)]
    data = next((layer for layer in layers if not layer.bottom), None)
    if data is None:
        data_layer(source)  # raises, saying what is missing
    if input_name in {layer.name for layer in layers if layer is not data}:
        raise DeployError(f"the train net already has a layer named {input_name!r}")
    dropped = set(data.top[1:])
    kept: list[caffe_pb2.LayerParameter] = []
    scores, sigmoid = None, False
    for layer in layers:
        if layer is data:
            continue
        if not layer.bottom or _is_loss(layer) or dropped.intersection(layer.bottom):
            if _is_loss(layer) and layer.bottom and scores is None:
                scores = layer.bottom[0]
                sigmoid = layer.type == "SigmoidCrossEntropyLoss"
            dropped.update(layer.top)
            continue
        copy = caffe_pb2.LayerParameter()
        copy.CopyFrom(layer)
        del copy.include[:]
        del copy.exclude[:]
        kept.append(copy)
    net = caffe_pb2.NetParameter(name=f"{source.name}_deploy" if source.name else "deploy")
    first = net.layer.add(name=input_name, type="Input", top=[data.top[0]])
    first.input_param.shape.add(dim=list(shape) if shape else input_shape(data))
    net.layer.extend(kept)
    if prob not in {top for layer in kept for top in layer.top}:
        if scores is None:
            raise DeployError(
                f"net {source.name!r}: no loss layer, so no scores to turn into {prob}"
            )
        net.layer.add(
            name=prob, type="Sigmoid" if sigmoid else "Softmax", bottom=[scores], top=[prob]
        )
    _check_bottoms(net)
    return net


def _check_bottoms(net: caffe_pb2.NetParameter) -> None:
    made: set[str] = set()
    for layer in net.layer:
        missing = [name for name in layer.bottom if name not in made]
        if missing:
            raise DeployError(
                f"layer {layer.name!r} reads {missing}, which the deploy net does not make "
                "(it came from a removed data, loss or metrics layer)"
            )
        made.update(layer.top)


def _first_image_size(spec: InputSpec, source: str) -> tuple[int, int]:
    """(H, W) of the list's first image: the input size when nothing resizes or crops (as the
    data layer decides it: the list read through its index, the image decoded as it is)."""
    try:
        images = index.open_index(source)
        if not len(images):
            raise index.ListFileError("no image")
        image = decode(os.path.join(spec.root_folder, images.path(0)), spec.transform.is_color)
        return image.shape[0], image.shape[1]  # oriented, as the data layer reads it
    except (OSError, index.ListFileError, BadImageError) as why:
        raise DeployError(
            f"{source}: cannot read the first image for the input size ({why}); "
            "pass shape=(N, C, H, W) (the command: --shape N,C,H,W)"
        ) from None
