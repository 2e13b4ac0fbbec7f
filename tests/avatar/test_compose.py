import numpy as np
import pytest
from scipy import ndimage

from photoavatar.avatar.compose import blend_sprites, compose_frame, load_assets
from photoavatar.visemes import VISEMES


@pytest.fixture(scope="module")
def assets(hopper):
    return load_assets(hopper.bundle)


def _outside(assets, shape):
    """Frame pixels the mask cannot touch at an identity head transform."""
    outside = np.ones(shape[:2], bool)
    x, y = assets.placement_px
    h, w = assets.mask.shape
    outside[y:y + h, x:x + w] = assets.mask == 0
    return outside


@pytest.mark.parametrize("viseme", VISEMES)
def test_pixels_outside_the_mask_are_the_source_photo(hopper, assets, viseme):
    photo = hopper.crop.image_rgb
    composed = compose_frame(photo, assets, 0, {viseme: 1.0})
    outside = _outside(assets, photo.shape)
    assert np.array_equal(composed[outside], photo[outside])
    x, y = assets.placement_px
    h, w = assets.mask.shape
    solid = assets.mask == 1.0
    sprite = assets.sprites[viseme]
    assert np.array_equal(composed[y:y + h, x:x + w][solid], sprite[solid].astype(np.uint8))


def test_open_visemes_change_the_mouth(hopper, assets):
    photo = hopper.crop.image_rgb.astype(int)
    changed = np.abs(compose_frame(hopper.crop.image_rgb, assets, 0, {"AI": 1.0}).astype(int) - photo).mean(axis=2)
    assert (changed > 30).sum() > 100


def test_weights_blend_linearly(hopper, assets):
    photo = hopper.crop.image_rgb
    half = compose_frame(photo, assets, 0, {"Rest": 0.5, "AI": 0.5}).astype(float)
    rest = compose_frame(photo, assets, 0, {"Rest": 1.0}).astype(float)
    ai = compose_frame(photo, assets, 0, {"AI": 1.0}).astype(float)
    assert np.abs(half - (rest + ai) / 2).max() <= 1.0
    assert np.array_equal(blend_sprites(assets, {"Rest": 2.0, "AI": 2.0}), blend_sprites(assets, {"Rest": 1, "AI": 1}))


def test_a_nod_moves_the_sprite_down_by_whole_pixels(hopper, assets):
    photo = hopper.crop.image_rgb
    still = compose_frame(photo, assets, 0, {"AI": 1.0})
    nodded = compose_frame(photo, assets, 0, {"AI": 1.0}, nod_px=2.0)
    x, y = assets.placement_px
    h, w = assets.mask.shape
    solid = np.zeros(photo.shape[:2], bool)
    solid[y:y + h, x:x + w] = assets.mask == 1.0
    rows, cols = np.nonzero(solid)
    assert np.array_equal(nodded[rows + 2, cols], still[rows, cols])


def test_sprite_follows_the_head_track(hopper, assets):
    """Where the mask is solid, frame pixel q shows the sprite at T^-1(q) (docs/bundle.md), sampled bilinearly."""
    index = int(np.argmax([abs(dx) for dx, _, _ in assets.head_track]))
    dx, dy, scale = assets.head_track[index]
    assert abs(dx) > 0.5
    composed = compose_frame(hopper.idle[index], assets, index, {"AI": 1.0}, nod_px=0.7)
    (x, y), (px, py) = assets.placement_px, assets.pivot_px
    solid = ndimage.binary_erosion(assets.mask == 1.0, iterations=3)
    v, u = np.nonzero(solid)
    # Frame pixels whose centres map back into the solid core, and where in the sprite they came from.
    qx = np.round(px + scale * (x + u + 0.5 - px) + dx - 0.5).astype(int)
    qy = np.round(py + scale * (y + v + 0.5 - py) + dy + 0.7 - 0.5).astype(int)
    sprite_x = (px + (qx + 0.5 - px - dx) / scale) - x - 0.5
    sprite_y = (py + (qy + 0.5 - py - dy - 0.7) / scale) - y - 0.5
    sprite = assets.sprites["AI"]
    expected = np.stack([ndimage.map_coordinates(sprite[..., c], [sprite_y, sprite_x], order=1) for c in range(3)], 1)
    error = np.abs(composed[qy, qx].astype(float) - expected)
    # OpenCV resolves sub-pixel positions to 1/32 px, which on a sharp lip edge is worth a level or two.
    assert error.max() <= 3.0 and error.mean() <= 0.5, (error.max(), error.mean())
