from workers.chunks import Chunk, plan_chunks


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
