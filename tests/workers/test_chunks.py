from workers.chunks import Chunk, auto_chunks, plan_chunks


def test_plan_chunks_covers_the_range_with_overlaps() -> None:
    plan = plan_chunks(0, 100, 4, overlap=5)
    assert plan == [Chunk(0, 0, 25, 0), Chunk(1, 25, 50, 20), Chunk(2, 50, 75, 45),
                    Chunk(3, 75, 100, 70)]  # fmt: skip
    strided = plan_chunks(0, 100, 3, overlap=8, stride=4)
    assert [c.start % 4 for c in strided] == [0, 0, 0] and strided[-1].end == 100
    assert all(c.start - c.warm_start == 8 for c in strided[1:])
    assert len(plan_chunks(0, 10, 8, overlap=5)) == 1  # too short to split
    ranged = plan_chunks(40, 80, 2, overlap=4)
    assert ranged == [Chunk(0, 40, 60, 40), Chunk(1, 60, 80, 56)]


def test_auto_chunks_follow_the_cpus_and_the_length() -> None:
    assert auto_chunks(289, cpus=2) == 1  # a short file
    assert auto_chunks(100_000, cpus=2) == 1  # one run already keeps two cores busy
    assert auto_chunks(100_000, cpus=8) == 4  # a chunk per two CPUs
    assert auto_chunks(1_200, cpus=16) == 2  # chunks of at least 500 frames
    assert auto_chunks(100_000, cpus=1) == 1
