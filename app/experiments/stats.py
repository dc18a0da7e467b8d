"""The statistics of an A/B experiment on labelled answers: a Wilson interval for each
version's online accuracy, a two-proportion z-test between two versions, and a verdict
in plain words. Pure functions; the normal CDF comes from `math.erfc` (no scipy).

Caveat, said where the verdict is read (docs/serving.md): a shadow is judged on the same
texts as the version it shadows, so the two samples are paired, not independent; the
two-proportion test then tends to be conservative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ALPHA = 0.05
Z_95 = 1.959963984540054  # the normal quantile at 1 - ALPHA / 2
# Below this many labelled answers for either version no verdict is given, whatever the
# p-value: the normal approximation behind the test is poor on a handful of answers.
MIN_FEEDBACK = 30


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def wilson_interval(correct: int, total: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (95 % by default); None with no data.
    Unlike p +- z*se it stays inside [0, 1] and is honest at 0/n and n/n."""
    if total <= 0:
        return None
    p = correct / total
    z2 = z * z
    denominator = 1 + z2 / total
    centre = (p + z2 / (2 * total)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class TwoProportionTest:
    difference: float  # accuracy of a minus accuracy of b
    z: float | None  # None when the pooled proportion is 0 or 1 (no variance)
    p_value: float  # two-sided


def two_proportion_test(correct_a: int, total_a: int, correct_b: int,
                        total_b: int) -> TwoProportionTest:
    """The pooled two-proportion z-test of H0: both versions are equally accurate."""
    if total_a <= 0 or total_b <= 0:
        raise ValueError("both versions need labelled answers")
    pa, pb = correct_a / total_a, correct_b / total_b
    pooled = (correct_a + correct_b) / (total_a + total_b)
    variance = pooled * (1 - pooled) * (1 / total_a + 1 / total_b)
    if variance <= 0:
        return TwoProportionTest(pa - pb, None, 1.0)
    z = (pa - pb) / math.sqrt(variance)
    return TwoProportionTest(pa - pb, z, min(1.0, 2 * normal_sf(abs(z))))


def more_needed(z: float, total: int, z_crit: float = Z_95) -> int:
    """How many more labelled answers (split as so far) until the test reaches
    significance if the accuracies stay as they are: z grows with the square root of
    the sample size."""
    if z == 0:
        raise ValueError("no difference: no sample size makes it significant")
    return max(1, math.ceil(((z_crit / abs(z)) ** 2 - 1) * total))


def format_p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


@dataclass(frozen=True)
class Verdict:
    test: TwoProportionTest | None
    text: str
    more_needed: int | None = None


def verdict(a: str, correct_a: int, total_a: int, b: str, correct_b: int,
            total_b: int) -> Verdict:
    """Version `a` against version `b` in words: "6 is better than 8 at p = 0.012", or
    why there is no verdict yet."""
    missing = [v for v, n in ((a, total_a), (b, total_b)) if n == 0]
    if missing:
        return Verdict(None, f"not enough evidence yet: no labelled answers for "
                             f"{' and '.join(missing)}")
    test = two_proportion_test(correct_a, total_a, correct_b, total_b)
    fewest = min((total_a, a), (total_b, b))
    if test.p_value < ALPHA and fewest[0] >= MIN_FEEDBACK:
        better, worse = (a, b) if test.difference > 0 else (b, a)
        return Verdict(test, f"{better} is better than {worse} at {format_p(test.p_value)}")
    if test.p_value < ALPHA:
        return Verdict(test, f"not enough evidence yet: at least {MIN_FEEDBACK} labelled "
                             f"answers per version are needed ({fewest[1]} has {fewest[0]})")
    if test.z is None or test.z == 0:
        return Verdict(test, f"not enough evidence yet: {a} and {b} are equally accurate "
                             f"so far ({correct_a}/{total_a} and {correct_b}/{total_b})")
    more = more_needed(test.z, total_a + total_b)
    return Verdict(test, f"not enough evidence yet: about {more} more labelled answers "
                         f"needed at the current difference ({a} {correct_a / total_a:.1%}, "
                         f"{b} {correct_b / total_b:.1%}, {format_p(test.p_value)})", more)
