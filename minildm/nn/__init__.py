"""Network building blocks of the U-Net noise predictor (lesson 03, and 06 for cross-attention).

- :mod:`minildm.nn.embeddings`: ``timestep_embedding``, ``TimestepEmbedding``
- :mod:`minildm.nn.attention`: ``CrossAttention``, ``SelfAttention``, ``GEGLU``, ``FeedForward``,
  ``BasicTransformerBlock``, ``SpatialTransformer``
- :mod:`minildm.nn.blocks`: ``ResBlock``, ``Downsample``, ``Upsample``, ``TimestepEmbedSequential``
- :mod:`minildm.nn.unet`: ``UNetConfig``, ``UNetModel`` (and re-exports of the blocks and the summary)
- :mod:`minildm.nn.summary`: ``summary``, ``describe_shapes``, ``count_parameters``
- :mod:`minildm.nn.dit`: ``DiTConfig``, ``DiTModel``: a transformer backbone instead (lesson 11)
"""

from minildm.nn.attention import (
    GEGLU,
    BasicTransformerBlock,
    CrossAttention,
    FeedForward,
    SelfAttention,
    SpatialTransformer,
)
from minildm.nn.blocks import Downsample, ResBlock, TimestepEmbedSequential, Upsample
from minildm.nn.dit import DiTConfig, DiTModel
from minildm.nn.embeddings import TimestepEmbedding, timestep_embedding
from minildm.nn.summary import count_parameters, describe_shapes, summary
from minildm.nn.unet import UNetConfig, UNetModel

__all__ = [
    "GEGLU",
    "BasicTransformerBlock",
    "CrossAttention",
    "DiTConfig",
    "DiTModel",
    "Downsample",
    "FeedForward",
    "ResBlock",
    "SelfAttention",
    "SpatialTransformer",
    "TimestepEmbedSequential",
    "TimestepEmbedding",
    "UNetConfig",
    "UNetModel",
    "Upsample",
    "count_parameters",
    "describe_shapes",
    "summary",
    "timestep_embedding",
]
