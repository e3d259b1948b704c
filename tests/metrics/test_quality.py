"""Error-versus-reject against a curve computed by hand on six images."""

import numpy as np
import pytest

from marginface.metrics.quality import error_versus_reject

# six images, quality (norm) 5, 1, 4, 2, 6, 3: rejection order 1, 3, 5, 2, 0, 4
QUALITY = np.array([5.0, 1.0, 4.0, 2.0, 6.0, 3.0])
# (i, j, genuine, score)
PAIRS = [
    (0, 2, True, 0.9),
    (1, 3, True, 0.1),  # the two worst images: a missed genuine pair
    (2, 5, True, 0.3),  # rejected with image 5 (third lowest)
    (0, 4, True, 0.8),
    (0, 1, False, 0.5),
    (2, 3, False, 0.2),
    (4, 5, False, 0.4),
    (3, 4, False, 0.0),
]


def curve(**kwargs):
    i, j, same, s = (np.array(c) for c in zip(*PAIRS, strict=True))
    return error_versus_reject(s, same, i, j, QUALITY, **kwargs)


def test_error_versus_reject_by_hand():
    # 4 impostors, FAR 0.25: one may score above t -> t = the 2nd largest impostor, 0.4
    result = curve(far=0.25, reject=(0.0, 1 / 6, 2 / 6, 0.5, 4 / 6))
    assert result["threshold"] == 0.4
    # genuine scores 0.9, 0.1, 0.3, 0.8: 0.1 and 0.3 are <= 0.4 (missed)
    # r = 0: 2/4; reject image 1: pairs (1,3) gone -> 1/3; also image 3: same -> 1/3;
    # also image 5: (2,5) gone -> 0/2; also image 2: (0,2) gone -> 0/1
    assert result["genuine_pairs"] == [4, 3, 3, 2, 1]
    assert result["fnmr"] == pytest.approx([0.5, 1 / 3, 1 / 3, 0.0, 0.0])
    assert result["reject"] == pytest.approx([0.0, 1 / 6, 2 / 6, 0.5, 4 / 6])


def test_unmeasurable_far_and_no_genuine_pair_left_give_none():
    assert curve(far=0.1)["fnmr"] == [None] * 7  # 0.1 * 4 impostors < 1
    result = curve(far=0.25, reject=(5 / 6,))  # only image 4 is left: no pair at all
    assert result["fnmr"] == [None] and result["genuine_pairs"] == [0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reject": (1.0,)}, r"reject fractions must lie in \[0, 1\), got \[1.0\]"),
        ({"reject": (-0.1,)}, r"reject fractions must lie in \[0, 1\)"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        curve(**kwargs)


def test_quality_must_cover_every_image():
    with pytest.raises(ValueError, match="one value per image"):
        error_versus_reject([0.5], [True], [0], [9], QUALITY)
