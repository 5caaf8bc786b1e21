"""Store what the microscope delivered and announce it: MRC + truth JSON + ``image.acquired``.

Keys come from :mod:`gridpilot.storage.keys` only: a Record movie is the ``movie`` product of
an exposure (``…/exposures/<image id>/movie.mrc``, its frames as an MRC stack), every other
image lives under ``…/images/<kind>/<image id>.mrc``; the twin's ground truth goes beside it at
``truth_key(key)``. The pixel size and acquisition facts travel inside the MRC and in the
:class:`~gridpilot.contracts.ImageAcquired` event, which is published after the pixels are
stored (so a consumer never reads a key that is not there yet).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gridpilot.contracts import ImageAcquired, Message, new_id, subjects
from gridpilot.storage import ObjectStore, keys

from .driver import Capture

__all__ = ["EventPublisher", "ImageContext", "store_capture"]

logger = logging.getLogger(__name__)

#: Publishes ``msg`` on ``subject`` with a de-duplication id (``Bus.publish_event``).
EventPublisher = Callable[[str, Message, str], Awaitable[Any]]

_UINT16_MAX = np.iinfo(np.uint16).max


@dataclass(frozen=True)
class ImageContext:
    """Who an image belongs to: the microscope, the session, the grid, the command, the target."""

    scope_id: str
    session_id: str
    grid_id: str | None
    command_id: str | None
    target_id: str | None = None


def _storable(data: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Counts as uint16 when they fit (like a camera), anything else as float32."""
    if data.size and np.issubdtype(data.dtype, np.floating) and np.all(data == np.round(data)) \
            and data.min() >= 0 and data.max() <= _UINT16_MAX:
        return data.astype(np.uint16)
    if data.dtype in (np.uint16, np.int16, np.float32):
        return data
    return data.astype(np.float32)


def image_key_for(ctx: ImageContext, capture: Capture, image_id: str) -> str:
    """The object key of a capture (a movie is an exposure's ``movie`` product)."""
    if capture.kind == "record" and ctx.grid_id is not None:
        return keys.exposure_key(ctx.session_id, ctx.grid_id, image_id, "movie")
    return keys.image_key(ctx.session_id, ctx.grid_id, capture.kind, image_id)


async def store_capture(store: ObjectStore, publish: EventPublisher | None, ctx: ImageContext,
                        capture: Capture) -> ImageAcquired:
    """Store one capture (pixels, then truth), then publish ``evt.image.acquired``.

    Args:
        store: the object store.
        publish: the event publisher, or None (no bus: HTTP-only tests).
        ctx: whose image it is.
        capture: what the driver returned.

    Returns:
        The event that was published.
    """
    image_id = new_id("img_")
    key = image_key_for(ctx, capture, image_id)
    truth_key = keys.truth_key(key) if capture.truth is not None else None
    event = ImageAcquired(
        image_id=image_id, scope_id=ctx.scope_id, session_id=ctx.session_id,
        grid_id=ctx.grid_id, target_id=ctx.target_id, command_id=ctx.command_id, key=key,
        kind=capture.kind, shape=tuple(int(n) for n in capture.data.shape),
        pixel_size_a=capture.pixel_size_a, stage=capture.stage,
        magnification=capture.magnification, target_defocus_um=capture.target_defocus_um,
        dose_e_per_a2=capture.dose_e_per_a2, frame_count=capture.frame_count,
        image_to_stage=capture.image_to_stage, tile=capture.tile,
    )
    metadata = event.model_dump(mode="json", exclude={"schema_version", "shape"})
    await store.put_array(key, _storable(capture.data), pixel_size_a=capture.pixel_size_a,
                          metadata=metadata)
    if truth_key is not None:
        await store.put_bytes(truth_key, json.dumps(capture.truth).encode(),
                              content_type="application/json")
    if publish is not None:
        await publish(subjects.EVT_IMAGE_ACQUIRED, event, image_id)
    logger.info("stored %s %s (%s, %.3g Å/px)", capture.kind, key,
                "x".join(str(n) for n in event.shape), capture.pixel_size_a)
    return event
