"""Passwords in URLs never reach what is printed, logged or published."""

import pytest

from pipeline.redact import redact, redact_url
from pipeline.types import Event
from pipeline.wire import decode_event, encode_event


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:s3cret@host/0", "redis://user:***@host/0"),
        ("redis://host:6379/0?password=s3cret&db=1", "redis://host:6379/0?password=***&db=1"),
        ("unix:///run/redis.sock?password=s3cret", "unix:///run/redis.sock?password=***"),
        (
            "rtsp://admin:s3cret@192.168.1.20:554/stream1",
            "rtsp://admin:***@192.168.1.20:554/stream1",
        ),
        ("https://s3cret@host/live.m3u8?token=s3cret#t", "https://***@host/live.m3u8?token=***#t"),
        (
            "rediss://host:6380/0?ssl_ca_certs=/etc/ca.pem",
            "rediss://host:6380/0?ssl_ca_certs=/etc/ca.pem",
        ),
        ("clips/dog.mp4", "clips/dog.mp4"),
    ],
)
def test_redact_url_hides_passwords_and_secret_parameters(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_finds_urls_inside_messages_and_events() -> None:
    text = "cannot open 'rtsp://u:s3cret@cam:554/x': refused (redis://:s3cret@h/0?password=s3cret)"
    assert (
        redact(text)
        == "cannot open 'rtsp://u:***@cam:554/x': refused (redis://:***@h/0?password=***)"
    )
    event = decode_event(encode_event(Event("source.error", "cam", 1.0, message=text)))
    assert "s3cret" not in event.message and "rtsp://u:***@cam:554/x" in event.message
