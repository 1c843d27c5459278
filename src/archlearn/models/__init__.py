"""archlearn.models: reference nets as plain ``nn.Module``s, with ``nn.ReLU`` modules.

>>> from archlearn.models import build
>>> net = build("lenet300")
>>> sum(p.numel() for p in net.parameters())
266610
"""

from archlearn.models.lenet import lenet5, lenet5_deep
from archlearn.models.mlp import lenet300, mlp
from archlearn.models.registry import available, build
from archlearn.models.testnets import (
    BasicBlock,
    ConcatNet,
    FunctionalReluNet,
    TinyResNet,
    concat_net,
    functional_relu_net,
    tiny_resnet,
    tiny_vgg_bn,
)

__all__ = [
    "BasicBlock",
    "ConcatNet",
    "FunctionalReluNet",
    "TinyResNet",
    "available",
    "build",
    "concat_net",
    "functional_relu_net",
    "lenet300",
    "lenet5",
    "lenet5_deep",
    "mlp",
    "tiny_resnet",
    "tiny_vgg_bn",
]
