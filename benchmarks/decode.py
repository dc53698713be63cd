"""Decode speed and peak memory of the source layer against raw decord and raw PyAV.

Every run is its own subprocess (so peak RSS is its own), and the readers of a case take turns
within each repeat, so a change in the machine's load hits them alike. Clips: the footage folder
(``../shared/data/footage`` relative to the repo root by default), a generated 1080p clip, and two
generated small clips of 1,000 and 10,000 frames that show whether RSS grows with video length.

    python benchmarks/decode.py [FOOTAGE_DIR] [--frames-1080p 120] [--long 10000] [--repeats 3]

Prints one JSON object: machine, load average, settings, and per case the frames/s (best and
median of the repeats), CPU seconds and peak RSS (MiB) of raw decord, raw PyAV, the source layer
(reader auto) and the source layer with reader="decord".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READERS = ("decord", "pyav", "source", "source_decord")


def run_case(reader: str, path: str, stride: int) -> dict:
    """Decode ``path`` keeping every ``stride``-th frame as RGB arrays; frames/s, CPU, peak RSS.

    Imports happen before the clock starts; opening the file is timed. CPU seconds count every
    thread of the process (decoder threads too).
    """
    import av
    import decord
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from pipeline.sources import SourceConfig, open_source

    started = time.perf_counter()
    cpu_started = time.process_time()
    kept = 0
    checksum = 0
    if reader == "decord":
        vr = decord.VideoReader(path, ctx=decord.cpu(0))
        n = len(vr)
        for index in range(0, n, stride):
            image = vr.next().asnumpy()
            kept += 1
            checksum += int(image[0, 0, 0])
            if stride > 1 and index + stride < n:
                vr.skip_frames(stride - 1)
    elif reader == "pyav":
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream)):
                if index % stride == 0:
                    image = frame.to_ndarray(format="rgb24")
                    kept += 1
                    checksum += int(image[0, 0, 0])
    else:
        reader_choice = "decord" if reader == "source_decord" else "auto"
        source = open_source(path, "bench", SourceConfig(stride=stride, reader=reader_choice))
        for frame in source.frames():
            kept += 1
            checksum += int(np.asarray(frame.image)[0, 0, 0])
        source.close()
    seconds = time.perf_counter() - started
    return {
        "frames": kept,
        "seconds": round(seconds, 3),
        "fps": round(kept / seconds, 1),
        "cpu_s": round(time.process_time() - cpu_started, 3),
        "peak_rss_mib": peak_rss_mib(),
        "checksum": checksum,
    }


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it is not inherited on exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def make_clip(path: Path, frames: int, width: int, height: int) -> Path:
    """A textured moving-gradient H.264 clip (x264 ultrafast, GOP 250)."""
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for i in range(frames):
            image = np.roll(base, shift=4 * i, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def run_once(reader: str, path: Path, stride: int) -> dict:
    """One `run_case` in a fresh subprocess."""
    out = subprocess.run(
        [sys.executable, __file__, "--case", reader, str(path), str(stride)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(path: Path, stride: int, repeats: int) -> dict[str, dict]:
    """Every reader on one clip and stride, the readers taking turns within each repeat.

    Returns per reader: frames, best and median frames/s, median CPU seconds, highest peak RSS.
    """
    runs: dict[str, list[dict]] = {reader: [] for reader in READERS}
    for _ in range(repeats):
        for reader in READERS:
            runs[reader].append(run_once(reader, path, stride))
    summary = {}
    for reader, results in runs.items():
        checksums = {r["checksum"] for r in results}
        if len(checksums) != 1:
            raise RuntimeError(f"{reader} on {path}: frames differ between runs ({checksums})")
        summary[reader] = {
            "frames": results[0]["frames"],
            "fps": max(r["fps"] for r in results),
            "fps_median": round(statistics.median(r["fps"] for r in results), 1),
            "cpu_s_median": round(statistics.median(r["cpu_s"] for r in results), 3),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in results),
            "checksum": results[0]["checksum"],
            "runs": len(results),
        }
    return summary


def compare(row: dict) -> dict:
    """The source layer against the faster raw decoder (best fps, and median fps)."""
    out = {}
    for stat in ("fps", "fps_median"):
        faster = max(("decord", "pyav"), key=lambda r: row[r][stat])
        out[stat] = {
            "faster_raw": faster,
            "source_vs_faster_raw": round(row["source"][stat] / row[faster][stat], 3),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("footage", nargs="?", default=str(ROOT.parent / "shared/data/footage"))
    parser.add_argument("--frames-1080p", type=int, default=120)
    parser.add_argument("--long", type=int, default=10_000, help="frames of the long small clip")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case (best fps kept)")
    parser.add_argument("--case", nargs=3, metavar=("READER", "PATH", "STRIDE"))
    args = parser.parse_args()
    if args.case:
        reader, path, stride = args.case
        print(json.dumps(run_case(reader, path, int(stride))))
        return

    clips = sorted(str(p) for p in Path(args.footage).glob("*.mp4"))
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        generated = {
            "1080p": make_clip(Path(tmp) / "gen_1080p.mp4", args.frames_1080p, 1920, 1080),
            "short_160x120": make_clip(Path(tmp) / "gen_short.mp4", args.long // 10, 160, 120),
            "long_160x120": make_clip(Path(tmp) / "gen_long.mp4", args.long, 160, 120),
        }
        cases = []
        for path in [*clips, str(generated["1080p"])]:
            for stride in (1, 5):
                row: dict = {"clip": Path(path).name, "stride": stride}
                row.update(measure(Path(path), stride, args.repeats))
                if len({row[r]["checksum"] for r in READERS}) != 1:
                    raise RuntimeError(f"{path} stride {stride}: the readers kept different frames")
                row["compare"] = compare(row)
                cases.append(row)
        memory = {
            name: measure(generated[name], 1, args.repeats)
            for name in ("short_160x120", "long_160x120")
        }
    load_after = os.getloadavg()
    report = {
        "benchmark": "decode",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "load_average_1_5_15min": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in load_after],
        },
        "data": {
            "footage": args.footage,
            "footage_clips": [Path(c).name for c in clips],
            "generated": {
                "1080p": f"{args.frames_1080p} frames 1920x1080 H.264",
                "short_160x120": f"{args.long // 10} frames 160x120 H.264",
                "long_160x120": f"{args.long} frames 160x120 H.264",
            },
        },
        "settings": "RGB uint8 output of every kept frame, full resolution; decord "
        "num_threads=0 (auto), PyAV thread_type=AUTO; 'source' = open_source with "
        "SourceConfig(stride=...) (reader auto), 'source_decord' = the same with "
        "reader='decord'; best and median fps, median CPU seconds (all threads) and highest "
        f"peak RSS (VmHWM) of {args.repeats} runs, each in a fresh process, the readers taking "
        "turns; every reader must keep the same frames (checksum of a pixel of each)",
        "cases": cases,
        "rss_vs_length": memory,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
