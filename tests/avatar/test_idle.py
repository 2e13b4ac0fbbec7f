"""The idle loop, measured on the decoded idle.mp4 of a real bundle (grace_hopper.jpg)."""

import numpy as np
import pytest
from skimage.registration import phase_cross_correlation

from photoavatar.avatar.idle import FPS, make_idle_loop
from photoavatar.avatar.landmarks import detect_faces, eye_aperture

FRAME_MS = 1000 / FPS


def _gray(frame):
    return frame.astype(np.float64).mean(axis=2)


def _shift_px(reference, moving, window):
    """(dx, dy) by which `moving` shows the window's content displaced relative to `reference`."""
    shift, _, _ = phase_cross_correlation(_gray(reference[window]), _gray(moving[window]), upsample_factor=40)
    return -shift[1], -shift[0]


@pytest.fixture(scope="module")
def apertures(hopper):
    return np.array([eye_aperture(detect_faces(frame)[0]) for frame in hopper.idle])


def test_loop_is_4_to_6_seconds_at_25_fps(hopper):
    count = len(hopper.idle)
    assert hopper.bundle.manifest.fps == 25 and hopper.bundle.manifest.frame_count == count
    assert 4.0 <= count / 25 <= 6.0
    assert len(hopper.bundle.roi.head_track) == count


@pytest.mark.parametrize("portrait", ["grace_hopper.jpg", "biden.jpg"])
def test_last_frame_flows_into_the_first(built_bundles, portrait):
    frames = built_bundles(portrait).idle.astype(np.int16)
    neighbours = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    wrap = np.abs(frames[-1] - frames[0]).mean()
    assert wrap <= neighbours.max(), (wrap, np.round(np.sort(neighbours)[-5:], 2))
    assert wrap < 3 * np.median(neighbours)  # a plain encode of this loop pops by about 5x the median step


def test_the_loop_frames_themselves_are_seamless(hopper):
    crop, layout = hopper.crop, hopper.bundle.atlas_layout
    rect = (*layout.placement_px, *layout.sprite_size_px)
    frames = make_idle_loop(crop.image_rgb, crop.face, rect).frames.astype(np.int16)
    neighbours = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    wrap = np.abs(frames[-1] - frames[0]).mean()
    assert wrap <= neighbours.max() and wrap <= 1.2 * np.median(neighbours)


def test_a_blink_closes_in_100_to_150_ms_and_reopens(apertures):
    open_level = np.median(apertures)
    closed_at = int(np.argmin(apertures))
    assert apertures[closed_at] < 0.5 * open_level, "no blink: the eye aperture never dips"
    started = closed_at
    while started > 0 and apertures[started - 1] < 0.9 * open_level:
        started -= 1
    started -= 1  # the last frame with the lids still open
    first_closed = next(i for i in range(started, closed_at + 1)
                        if apertures[i] <= apertures[closed_at] + 0.25 * (open_level - apertures[closed_at]))
    closing_ms = (first_closed - started) * FRAME_MS
    assert 100 <= closing_ms <= 150, (closing_ms, np.round(apertures[started - 1:closed_at + 8], 3))
    reopened = closed_at + np.argmax(apertures[closed_at:] >= 0.9 * open_level)
    assert 0 < (reopened - closed_at) * FRAME_MS <= 400


def test_eyes_are_open_most_of_the_time(apertures):
    assert (apertures >= 0.9 * np.median(apertures)).mean() > 0.85


def test_head_sways_and_breathes_by_at_most_2_px(hopper):
    x, y, w, h = hopper.crop.face.box
    window = (slice(max(0, y), y + h), slice(max(0, x), x + w))
    shifts = np.array([_shift_px(hopper.idle[0], frame, window) for frame in hopper.idle[::3]])
    largest = np.hypot(shifts[:, 0], shifts[:, 1]).max()
    assert 0.4 < largest <= 2.0, largest  # it moves, subtly


@pytest.mark.parametrize("portrait", ["grace_hopper.jpg", "obama_partial_face.jpg"])  # the second: face at the edge
def test_head_track_locks_the_mouth_overlay_within_half_a_pixel(built_bundles, portrait):
    hopper = built_bundles(portrait)
    layout, roi = hopper.bundle.atlas_layout, hopper.bundle.roi
    x, y = layout.placement_px
    w, h = layout.sprite_size_px
    window = (slice(y, y + h), slice(x, x + w))
    centre = np.array([x + w / 2, y + h / 2])
    pivot = np.array(roi.pivot_px)
    drifts = []
    for index in range(0, len(hopper.idle), 2):
        dx, dy, scale = roi.head_track[index]
        expected = pivot + scale * (centre - pivot) + (dx, dy) - centre
        measured = np.array(_shift_px(hopper.idle[0], hopper.idle[index], window))
        drifts.append(np.linalg.norm(measured - expected))
    assert max(drifts) <= 0.5, np.round(drifts, 2)


def test_first_frame_is_the_photo_and_the_border_never_moves(hopper):
    crop = hopper.crop
    x, y = hopper.bundle.atlas_layout.placement_px
    w, h = hopper.bundle.atlas_layout.sprite_size_px
    loop = make_idle_loop(crop.image_rgb, crop.face, (x, y, w, h))
    assert np.array_equal(loop.frames[0], crop.image_rgb)
    border = np.ones(crop.image_rgb.shape[:2], bool)
    border[12:-12, 12:-12] = False
    assert all(np.array_equal(frame[border], crop.image_rgb[border]) for frame in loop.frames)
    assert loop.blink_frames, "the schedule has no closed-lid frame"
