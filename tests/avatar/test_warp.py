import numpy as np
import pytest

from photoavatar.avatar.warp import ThinPlateSpline, backward_map, remap


def _ring(count=12, radius=40.0, center=(60.0, 50.0)):
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    return np.stack([center[0] + radius * np.cos(angles), center[1] + radius * np.sin(angles)], axis=1)


def test_spline_passes_through_its_control_points_and_bends_smoothly():
    output = np.concatenate([_ring(), [[60.0, 50.0], [60.0, 62.0]]])
    source = output.copy()
    source[-2:] += [[0.0, -6.0], [0.0, -8.0]]  # the middle moves, the ring stays
    spline = ThinPlateSpline.fit(output, source)
    assert np.abs(spline(output) - source).max() < 0.5
    # Between the moved points and the still ring, the displacement fades smoothly: no step anywhere.
    line = np.stack([np.full(81, 60.0), np.linspace(10.0, 90.0, 81)], axis=1)
    moved = spline(line)[:, 1] - line[:, 1]
    assert np.abs(np.diff(moved)).max() < 1.0


def test_affine_maps_are_reproduced_exactly_everywhere():
    output = _ring(8)
    matrix = np.array([[1.05, 0.1], [-0.05, 0.95]])
    source = output @ matrix.T + (3.0, -2.0)
    spline = ThinPlateSpline.fit(output, source)
    probe = np.array([[0.0, 0.0], [60.0, 50.0], [130.0, 7.0]])
    assert np.allclose(spline(probe), probe @ matrix.T + (3.0, -2.0), atol=1e-3)


def test_zero_weight_is_the_identity_pixel_for_pixel():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (100, 120, 3), dtype=np.uint8)
    output = _ring()
    spline = ThinPlateSpline.fit(output, output + 5.0)
    box = (10, 20, 90, 70)
    weight = np.zeros((70, 90), np.float32)
    weight[30:40, 40:50] = 1.0
    map_x, map_y = backward_map(spline, box, weight)
    warped = remap(image, map_x, map_y)
    still = weight == 0
    assert np.array_equal(warped[still], image[20:90, 10:100][still])
    assert not np.array_equal(warped[~still], image[20:90, 10:100][~still])
    assert np.allclose(map_x[35, 45] - (10 + 45), 5.0, atol=0.3)  # the coarse grid interpolates faithfully


def test_bad_control_points_are_a_clear_error():
    with pytest.raises(ValueError, match="same shape"):
        ThinPlateSpline.fit(np.zeros((5, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="at least 3"):
        ThinPlateSpline.fit(np.zeros((2, 2)), np.zeros((2, 2)))
