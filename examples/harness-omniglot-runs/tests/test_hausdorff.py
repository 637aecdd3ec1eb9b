"""The modified Hausdorff distance, checked by hand, and the classifier built on it."""

from __future__ import annotations

import numpy as np
from harness_omniglot_runs.hausdorff import ModifiedHausdorff, ink_points, modified_hausdorff

from harness.episodes import EpisodeKind, EpisodeSettings, FewShotInputs
from harness.specs import ModelContext


def test_distance_by_hand() -> None:
    a = np.array([[0.0, 0.0]])
    b = np.array([[0.0, 0.0], [0.0, 4.0]])
    # a -> b: nearest is 0 away, mean 0; b -> a: 0 and 4, mean 2; the larger is 2
    assert modified_hausdorff(a, b) == 2.0
    assert modified_hausdorff(b, a) == 2.0
    c = np.array([[0.0, 0.0], [0.0, 2.0]])
    d = np.array([[0.0, 1.0]])
    assert modified_hausdorff(c, d) == 1.0  # 1 and 1 either way
    assert modified_hausdorff(c, np.zeros((0, 2))) == float("inf")


def test_ink_points_are_centred_on_their_mean() -> None:
    image = np.zeros((5, 5))
    image[1, 1] = image[1, 3] = 1.0
    image[4, 4] = 0.4  # faint: not ink
    np.testing.assert_array_equal(ink_points(image), [[0.0, -1.0], [0.0, 1.0]])


def test_a_query_takes_the_label_of_its_nearest_drawing() -> None:
    shapes = np.zeros((3, 1, 9, 9), dtype=np.float32)
    shapes[0, 0, 4, :] = 1  # a horizontal bar
    shapes[1, 0, :, 4] = 1  # a vertical bar
    shapes[2, 0, 2:7, 2:7] = 1  # a square
    settings = EpisodeSettings(EpisodeKind.FEWSHOT, ways=3, shots=1, queries=1)
    queries = shapes[[2, 0, 1]].copy()
    queries[1, 0, 4, 0] = 0  # a shorter bar is still a bar
    inputs = FewShotInputs(settings, shapes[None], np.array([[2, 0, 1]]), queries[None])
    model = ModifiedHausdorff(ModelContext(settings, (1, 9, 9), {}, 0))
    np.testing.assert_array_equal(model.predict(inputs), [[1, 2, 0]])
