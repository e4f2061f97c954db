"""YOLOX-Nano in PyTorch, its weights read out of the shared ONNX file.

The ONNX export has every BatchNorm folded into the convolution before it, so each BaseConv gets
the folded weight, and its BatchNorm is set to the identity plus the folded bias (mean 0, var 1-eps,
gamma 1). Those BatchNorms are therefore kept in eval mode while training (frozen statistics),
which also suits the small CPU batches used here.
"""
from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from training.yoloxlib import YOLOPAFPN, YOLOX, YOLOXHead

DEPTH, WIDTH = 0.33, 0.25  # YOLOX-Nano
INPUT_SIZE = 416


def build(num_classes: int) -> YOLOX:
    in_channels = [256, 512, 1024]
    backbone = YOLOPAFPN(DEPTH, WIDTH, in_channels=in_channels, act="silu", depthwise=True)
    head = YOLOXHead(num_classes, WIDTH, in_channels=in_channels, act="silu", depthwise=True)
    model = YOLOX(backbone, head)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps, m.momentum = 1e-3, 0.03
    return model


def _conv_order(model: YOLOX) -> list[nn.Conv2d]:
    """Convolutions in the order a forward pass runs them (= the ONNX graph's order)."""
    order: list[nn.Conv2d] = []
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(mod))
             for m in model.modules() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return order


def _onnx_convs(path: str) -> list[tuple[np.ndarray, np.ndarray]]:
    graph = onnx.load(path).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    convs = []
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        w = inits[node.input[1]]
        b = inits[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
        convs.append((w, b))
    return convs


def load_coco_onnx(model: YOLOX, onnx_path: str, class_map: list[int] | None = None) -> None:
    """Copy the ONNX YOLOX-Nano weights into `model`.

    class_map[i] = the COCO index whose classifier row initialises class i of `model`
    (None: the model keeps the 80 COCO classes).
    """
    convs = _onnx_convs(onnx_path)
    order = _conv_order(model)
    if len(convs) != len(order):
        raise ValueError(f"{onnx_path}: {len(convs)} convolutions, the model has {len(order)}")
    bn_after = {}
    for m in model.modules():  # BaseConv: conv + bn
        if hasattr(m, "conv") and hasattr(m, "bn"):
            bn_after[m.conv] = m.bn
    cls_preds = set(model.head.cls_preds)
    with torch.no_grad():
        for conv, (w, b) in zip(order, convs):
            if conv in cls_preds and class_map is not None:
                w, b = w[class_map], b[class_map]
            if tuple(conv.weight.shape) != w.shape:
                raise ValueError(f"shape mismatch: {tuple(conv.weight.shape)} vs {w.shape}")
            conv.weight.copy_(torch.from_numpy(w.copy()))
            bn = bn_after.get(conv)
            if bn is not None:
                bn.weight.fill_(1.0)
                bn.bias.copy_(torch.from_numpy(b.copy()))
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
            elif conv.bias is not None:
                conv.bias.copy_(torch.from_numpy(b.copy()))
            else:
                raise ValueError("a convolution with a bias but no BatchNorm after it")


def freeze_bn(model: nn.Module) -> None:
    """Keep every BatchNorm on its loaded statistics (call after model.train())."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


def export_onnx(model: YOLOX, path: str) -> None:
    """Export in the shared file's format: `images` [1,3,416,416] BGR 0-255 -> `output`
    [1,3549,4+1+C] with raw tx,ty,tw,th and sigmoided obj/cls (services' decode_yolox)."""
    model.eval()
    model.head.decode_in_inference = False
    dummy = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
    torch.onnx.export(model, dummy, path, input_names=["images"], output_names=["output"],
                      opset_version=11, do_constant_folding=True, dynamo=False)
