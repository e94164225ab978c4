"""Model backends behind small protocols: depth, completion, animation, captioning.

Pipelines use the protocols in `dreamjourney.models.protocols` and get concrete backends from
`dreamjourney.models.registry.build_backends`. Importing this package loads no weights.
"""

from dreamjourney.models.protocols import (
    Animator,
    Caption,
    Captioner,
    Completer,
    CompletionContext,
    DepthEstimator,
    DepthResult,
)

__all__ = [
    "Animator",
    "Caption",
    "Captioner",
    "Completer",
    "CompletionContext",
    "DepthEstimator",
    "DepthResult",
]
