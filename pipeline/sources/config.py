"""Settings of the source layer (sampling, range, size, live timeouts and reconnects)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.sources.positions import parse_position


class SourceConfig(BaseModel):
    """How a source is read.

    Attributes:
        stride: Keep every ``stride``-th frame of the range (1 = every frame). Indices keep their
            true source value: stride 5 from frame 0 yields 0, 5, 10, ...
        target_fps: Keep at most this many frames per second of presentation time (None = all).
            Cannot be combined with ``stride > 1``.
        start: First frame of the range: a frame number, or a ``HH:MM:SS(.fff)`` / ``MM:SS(.fff)``
            timestamp (None = from the beginning). Files and image folders only.
        end: End of the range, exclusive, same forms as ``start`` (None = to the end).
        resize_short_side: Decode straight to this short side, aspect kept (None = full size;
            never upscales).
        max_pixels: Frames with more pixels than this are downscaled to fit (logged).
        images_fps: Frame rate given to image folders (PTS = index / images_fps).
        decode_threads: Decoder threads for file readers (0 = let the decoder choose).
        open_timeout_s: Live sources: seconds to wait for a stream to answer when connecting.
        read_timeout_s: Live sources: seconds without data before the stream counts as dead.
        reconnect: Live sources: reconnect after a disconnect.
        max_retries: Live sources: reconnect attempts in a row before giving up (None = forever).
        backoff_initial_s: First reconnect delay; it doubles per failed attempt, with jitter.
        backoff_max_s: Cap on the reconnect delay.
        live_buffer: Live sources: frames kept while processing is slower than the camera; when
            full, the oldest is dropped (counted in ``dropped``).
        rtsp_transport: ``"tcp"`` or ``"udp"`` for ``rtsp://`` sources.
        reader: File reader. ``"auto"`` (and ``"pyav"``): PyAV, which carries on from the open's
            packet scan and first decoded frame; on 720p and 1080p clips it decodes as fast as raw
            decord or faster (on tiny frames, e.g. 160x120, decord is faster), and its memory stays
            flat however long the video (decord's peak memory varies and grows with length).
            ``"decord"``: decord, refused (with a message) for files whose frame count, timestamps
            or display rotation it gets wrong.
    """

    model_config = ConfigDict(extra="forbid")

    stride: int = Field(1, ge=1)
    target_fps: float | None = Field(None, gt=0)
    start: str | int | None = None
    end: str | int | None = None
    resize_short_side: int | None = Field(None, ge=2)
    max_pixels: int = Field(4096 * 2160, ge=4)
    images_fps: float = Field(25.0, gt=0)
    decode_threads: int = Field(0, ge=0)
    open_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(5.0, gt=0)
    reconnect: bool = True
    max_retries: int | None = Field(10, ge=0)
    backoff_initial_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    live_buffer: int = Field(4, ge=1)
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    reader: Literal["auto", "decord", "pyav"] = "auto"

    @field_validator("start", "end")
    @classmethod
    def _check_position(cls, value: str | int | None) -> str | int | None:
        parse_position(value)  # raises ValueError naming the value
        return value

    @model_validator(mode="after")
    def _check_sampling(self) -> SourceConfig:
        if self.stride > 1 and self.target_fps is not None:
            raise ValueError(
                f"stride={self.stride} and target_fps={self.target_fps} are both set — "
                "choose one way of sampling"
            )
        return self
