"""Very deep character-level CNNs for text (Conneau et al. 2017), as used in the paper for Amazon
Review Polarity/Full (reference: ``svp/amazon/models.py``, the ``vdcnn9-maxpool`` and
``vdcnn29-maxpool`` variants, which are its defaults).

Text is lower-cased and quantised character by character to a fixed length of 1,014: index 0 pads,
1 is "unknown", 2… are the 67 alphabet characters (69 symbols in all, as in the reference).
Sections of 64/128/256/512 filters with max-pool down-sampling, k-max pooling (k = 8) over time,
then two hidden layers of 2,048 units; the last ``nn.Linear`` is the classifier and the second
hidden layer's output is the embedding.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from svpkit.errors import ConfigError
from svpkit.models.base import ModelSpec, TrainConfig
from svpkit.options import ModelOption

# The reference's alphabet (Zhang et al. 2015 minus "@", "\\" and the newline), with an ASCII "^".
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-,;.!?:'\"/|_#$%^&*~`+=<>()[]{} "
PAD, UNKNOWN, OFFSET = 0, 1, 2
VOCAB_SIZE = len(ALPHABET) + OFFSET  # 69
MAX_LENGTH = 1014

_LOOKUP = np.full(128, UNKNOWN, dtype=np.uint8)
for _i, _ch in enumerate(ALPHABET):
    _LOOKUP[ord(_ch)] = _i + OFFSET


def quantize(texts: list[str], max_length: int = MAX_LENGTH) -> torch.Tensor:
    """Character indices (uint8, N×``max_length``): lower-cased, truncated, zero-padded."""
    if max_length < 1:
        raise ConfigError(f"VDCNN max_length must be at least 1, got {max_length}")
    out = np.zeros((len(texts), max_length), dtype=np.uint8)
    for row, text in enumerate(texts):
        codes = np.frombuffer(text.lower()[:max_length].encode("utf-32-le"), dtype=np.uint32)
        out[row, : codes.size] = np.where(codes < 128, _LOOKUP[np.minimum(codes, 127)], UNKNOWN)
    return torch.from_numpy(out)


def encode_characters(dataset: object, split: str, options: Mapping[str, Any]) -> torch.Tensor:
    """``ModelSpec.encode`` for VDCNN: quantise a text split's strings to ``max_length`` characters."""
    texts = getattr(dataset, split).x
    if isinstance(texts, torch.Tensor):
        raise TypeError("VDCNN reads text data sets (lists of strings)")
    return quantize(list(texts), int(options.get("max_length", MAX_LENGTH)))


def kmax_pooling(x: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` largest activations along time, kept in their original order."""
    k = min(k, x.shape[2])
    indices = x.topk(k, dim=2).indices.sort(dim=2).values
    return x.gather(2, indices)


class MaxPoolBlock(nn.Module):
    """Two conv-BN-ReLU layers; when the width grows, max-pool (k 3, stride 2) halves time first."""

    def __init__(self, in_filters: int, out_filters: int) -> None:
        super().__init__()
        self.pool = nn.MaxPool1d(3, stride=2, padding=1) if out_filters > in_filters else nn.Identity()
        self.conv1 = nn.Conv1d(in_filters, out_filters, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(out_filters)
        self.conv2 = nn.Conv1d(out_filters, out_filters, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(out_filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(self.pool(x))))
        return F.relu(self.bn2(self.conv2(h)))


class VDCNN(nn.Module):
    def __init__(
        self,
        blocks: tuple[int, ...],
        num_classes: int,
        filters: tuple[int, ...] = (64, 128, 256, 512),
        embedding_size: int = 16,
        k: int = 8,
        num_hidden: int = 2048,
    ) -> None:
        super().__init__()
        self.k = k
        self.character_embedding = nn.Embedding(VOCAB_SIZE, embedding_size)
        self.conv1 = nn.Conv1d(embedding_size, filters[0], 3, padding=1, bias=False)
        layers: list[nn.Module] = []
        in_filters = filters[0]
        for count, out_filters in zip(blocks, filters):
            for _ in range(count):
                layers.append(MaxPoolBlock(in_filters, out_filters))
                in_filters = out_filters
        self.sections = nn.Sequential(*layers)
        self.fc1 = nn.Linear(in_filters * k, num_hidden)
        self.fc2 = nn.Linear(num_hidden, num_hidden)
        self.fc3 = nn.Linear(num_hidden, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in")
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The torch learner hands encoded inputs over as floats; the indices are exact.
        h = self.character_embedding(x.long()).transpose(1, 2)
        h = self.sections(self.conv1(h))
        h = kmax_pooling(h, self.k)
        if h.shape[2] < self.k:  # texts shorter than k steps after pooling (tiny test inputs)
            h = F.pad(h, (0, self.k - h.shape[2]))
        h = F.relu(self.fc1(h.flatten(1)))
        h = F.relu(self.fc2(h))
        return self.fc3(h)


# Reference schedule (``svp/amazon``): SGD, momentum 0.9, weight decay 1e-4, batch 128, 15 epochs
# with the learning rate halved every 3 epochs from 0.01.
TEXT_TRAIN = TrainConfig(
    epochs=15, batch_size=128, lr=0.01, momentum=0.9, weight_decay=1e-4, milestones=(3, 6, 9, 12), gamma=0.5
)

_BLOCKS = {9: (1, 1, 1, 1), 29: (5, 5, 2, 2)}

# The network is length-agnostic (k-max pooling); only the quantisation depends on it. 1,014 is the
# paper's; short-text data sets (SST-2's longest sentence has 267 characters) train several times
# faster with a shorter length and the same inputs.
MAX_LENGTH_OPTION = ModelOption(
    "max_length", int, MAX_LENGTH, "characters per text: longer texts are truncated, shorter ones padded", minimum=1
)


def vdcnn(depth: int, num_classes: int) -> VDCNN:
    return VDCNN(_BLOCKS[depth], num_classes)


def _spec(depth: int) -> ModelSpec:
    return ModelSpec(
        name=f"vdcnn{depth}",
        family="vdcnn",
        train=TEXT_TRAIN,
        build=lambda num_classes, _shape: vdcnn(depth, num_classes),
        modalities=("text",),
        description=f"VDCNN-{depth} character CNN (max-pool variant, 1,014 characters, k-max pooling k=8)",
        encode=encode_characters,
        example_input_shape=(MAX_LENGTH,),
        example_num_classes=2,
        options=(MAX_LENGTH_OPTION,),
    )


SPECS = [_spec(9), _spec(29)]
