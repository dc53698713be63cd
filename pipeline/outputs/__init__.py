"""Outputs: Redis Streams publishing and reading, exports (DAVIS, MOT, COCO)."""
