"""The fault machinery both sides of the sandbox share: the token bucket and the dice."""

from __future__ import annotations

from romakit.sim.faults import Dice, Faults, TokenBucket


def test_the_bucket_lets_a_second_s_worth_through_then_refills_at_the_rate() -> None:
    bucket = TokenBucket()
    assert [bucket.take(5, now=10.0) for _ in range(6)] == [True] * 5 + [False]
    assert bucket.take(5, now=10.25) and not bucket.take(5, now=10.25)  # 0.25 s at 5/s: one more
    assert bucket.take(0.5, now=10.25) and not bucket.take(0.5, now=11.0)  # a new rate starts full (one at least)
    assert bucket.take(0.5, now=12.3)
    assert not bucket.take(0, now=99.0) and not bucket.take(-1, now=99.0)


def test_the_dice_replay_per_seed_and_start_again_when_it_changes() -> None:
    faults = Faults(seed=4)
    first = Dice(faults).rolls(5)
    dice = Dice(faults)
    assert dice.rolls(5) == first
    faults.update(seed=9)
    other = dice.rolls(5)
    assert other != first and other == Dice(Faults(seed=9)).rolls(5)
