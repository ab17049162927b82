"""Network building blocks of the U-Net noise predictor (lesson 03, and 06 for cross-attention).

- :mod:`minildm.nn.embeddings`: ``timestep_embedding``, ``TimestepEmbedding``
- :mod:`minildm.nn.attention`: ``CrossAttention``, ``SelfAttention``, ``GEGLU``, ``FeedForward``,
  ``BasicTransformerBlock``, ``SpatialTransformer``
- :mod:`minildm.nn.unet`: ``ResBlock``, ``Downsample``, ``Upsample``, ``UNetConfig``, ``UNetModel``,
  ``summary``, ``describe_shapes``, ``count_parameters``
"""

from minildm.nn.attention import (
    GEGLU,
    BasicTransformerBlock,
    CrossAttention,
    FeedForward,
    SelfAttention,
    SpatialTransformer,
)
from minildm.nn.embeddings import TimestepEmbedding, timestep_embedding
from minildm.nn.unet import (
    Downsample,
    ResBlock,
    TimestepEmbedSequential,
    UNetConfig,
    UNetModel,
    Upsample,
    count_parameters,
    describe_shapes,
    summary,
)

__all__ = [
    "GEGLU",
    "BasicTransformerBlock",
    "CrossAttention",
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
